"""The network between two parties: impairments (what happens to each packet) and the relay
party that applies them on the wire, so captures show what the receiver got."""
