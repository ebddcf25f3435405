/* calllab: bind() that puts a socket bound to 0.0.0.0 on CALLLAB_BIND_ADDRESS instead.
 *
 * baresip 1.0 binds its RTP and RTCP sockets to every interface ("we listen on all
 * interfaces"), so on loopback its media leaves from 127.0.0.1, the browser's address in
 * the lab, whatever its SDP says. Preloaded into baresip (lab/sip/videophone.py), this keeps
 * its media on the video phone's own address, as every other party's is. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <sys/socket.h>

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	static int (*real_bind)(int, const struct sockaddr *, socklen_t);
	const char *wanted = getenv("CALLLAB_BIND_ADDRESS");
	struct sockaddr_in moved;

	if (!real_bind)
		real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
	if (wanted && addr && addr->sa_family == AF_INET && len >= sizeof(moved)) {
		moved = *(const struct sockaddr_in *)addr;
		if (moved.sin_addr.s_addr == htonl(INADDR_ANY) && inet_pton(AF_INET, wanted, &moved.sin_addr) == 1)
			return real_bind(fd, (const struct sockaddr *)&moved, sizeof(moved));
	}
	return real_bind(fd, addr, len);
}
