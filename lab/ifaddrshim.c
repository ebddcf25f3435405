/* calllab: getifaddrs() that lists one interface, "calllab", holding CALLLAB_IFADDR only.
 *
 * Janus 1.1.2 takes only addresses its machine's interfaces list, and never a loopback
 * interface's: its ICE gathers no candidate on lo, and its SIP plugin, given 127.0.0.20
 * (which lo answers but does not list), falls back to the machine's LAN address. Preloaded
 * into Janus (lab/janus.py), this shows it one up-and-running, non-loopback interface with
 * the loopback address it is meant to use, and no other: every socket of Janus binds there. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static struct sockaddr_in address, netmask;
static char name[] = "calllab";
static struct ifaddrs only = {
	.ifa_next = NULL,
	.ifa_name = name,
	.ifa_flags = IFF_UP | IFF_RUNNING,
	.ifa_addr = (struct sockaddr *)&address,
	.ifa_netmask = (struct sockaddr *)&netmask,
};

int getifaddrs(struct ifaddrs **list)
{
	static int (*real_getifaddrs)(struct ifaddrs **);
	const char *wanted = getenv("CALLLAB_IFADDR");

	if (!real_getifaddrs)
		real_getifaddrs = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
	if (!wanted)
		return real_getifaddrs(list);
	address.sin_family = AF_INET;
	netmask.sin_family = AF_INET;
	netmask.sin_addr.s_addr = htonl(0xffffffff);
	if (inet_pton(AF_INET, wanted, &address.sin_addr) != 1)
		return real_getifaddrs(list);
	*list = &only; /* static: freeifaddrs() below leaves it be */
	return 0;
}

void freeifaddrs(struct ifaddrs *list)
{
	static void (*real_freeifaddrs)(struct ifaddrs *);

	if (list == &only)
		return;
	if (!real_freeifaddrs)
		real_freeifaddrs = (void (*)(struct ifaddrs *))dlsym(RTLD_NEXT, "freeifaddrs");
	real_freeifaddrs(list);
}
