"""The WebRTC/SIP gateway: the seed's gateway role (aiortc to the browser, pjsua2 to SIP)."""
