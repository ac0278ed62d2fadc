/* http_listen.h - the listening side of the agent's HTTP server: parsing
 * VALKMEM_LISTEN, binding, and announcing the URL. Agent thread only. */
#ifndef VKM_HTTP_LISTEN_H
#define VKM_HTTP_LISTEN_H

#include <stdbool.h>
#include <sys/socket.h>

typedef struct vkm_listen_addr_s {
  struct sockaddr_storage ss;
  socklen_t len;
  bool loopback, any;
} vkm_listen_addr_t;

/* Accepts "host:port", ":port", "port", "[v6]:port", "host" (port 0).
 * 0 or -EINVAL. */
int vkm_listen_parse(const char *spec, vkm_listen_addr_t *la);
/* A non-blocking listening socket, or -errno. */
int vkm_listen_bind(const vkm_listen_addr_t *la);
/* The URL line on stderr, or VALKMEM_URL_FILE (a process other than the root writes
 * <file>.<pid>). `bound` is the host as bound ("*" for every interface). */
void vkm_listen_announce(const char *bound, int port, bool not_root);

#endif
