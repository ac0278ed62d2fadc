/* http_listen.c - where the agent's HTTP server listens, and how it says
 * so: VALKMEM_LISTEN parsing, the bind, the URL line and URL file. */
#include "http_listen.h"
#include "agent.h"
#include "sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Accepts "host:port", ":port", "port", "[v6]:port", "host" (port 0);
 * host is an IP literal, "localhost" or "*". A missing host is 127.0.0.1:
 * the safe default, unlike the every-interface reading of ":port" some
 * servers use. 0 or -EINVAL. */
int vkm_listen_parse(const char *spec, vkm_listen_addr_t *la) {
  char host[64] = "127.0.0.1";
  long port = 0;
  const char *ps = NULL;
  memset(la, 0, sizeof *la);
  if (!spec || !*spec) spec = "127.0.0.1:0";
  if (spec[0] == '[') {
    const char *rb = strchr(spec, ']');
    if (!rb || (size_t)(rb - spec - 1) >= sizeof host || (rb[1] && rb[1] != ':')) return -EINVAL;
    memcpy(host, spec + 1, (size_t)(rb - spec - 1));
    host[rb - spec - 1] = 0;
    ps = rb[1] ? rb + 2 : NULL;
  } else {
    const char *colon = strrchr(spec, ':');
    bool digits = strspn(spec, "0123456789") == strlen(spec);
    if (digits) ps = spec;
    else if (colon) {
      if (colon > spec) {
        if ((size_t)(colon - spec) >= sizeof host || memchr(spec, ':', (size_t)(colon - spec))) return -EINVAL;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = 0;
      }
      ps = colon + 1;
    } else {
      if (strlen(spec) >= sizeof host) return -EINVAL;
      strcpy(host, spec);
    }
  }
  if (ps) {
    if (!*ps || strspn(ps, "0123456789") != strlen(ps) || strlen(ps) > 5) return -EINVAL;
    port = strtol(ps, NULL, 10);
    if (port > 65535) return -EINVAL;
  }
  if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
  if (strcmp(host, "*") == 0) strcpy(host, "0.0.0.0");
  struct sockaddr_in *a4 = (struct sockaddr_in *)&la->ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&la->ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    la->len = sizeof *a4;
    uint32_t ip = ntohl(a4->sin_addr.s_addr);
    la->loopback = (ip >> 24) == 127;
    la->any = ip == 0;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    la->len = sizeof *a6;
    la->loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr) ||
                   (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) && a6->sin6_addr.s6_addr[12] == 127);
    la->any = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
  } else {
    return -EINVAL;
  }
  return 0;
}

int vkm_listen_bind(const vkm_listen_addr_t *la) {
  int fd = vkm_sys_socket(la->ss.ss_family, 1);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&la->ss, la->len) < 0 || listen(fd, 128) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

/* The URL line, and VALKMEM_URL_FILE written atomically (temp + rename) so
 * a reader polling for it never sees half a URL. A process other than
 * the tree's root writes
 * <file>.<pid>, leaving its parent's file alone. */
void vkm_listen_announce(const char *bound, int port, bool not_root) {
  char url[512], tok[300] = "";
  const char *host = bound;
  if (strcmp(host, "*") == 0) host = "127.0.0.1";
  if (vkm_config.token[0]) {
    size_t o = (size_t)snprintf(tok, sizeof tok, "?token=");
    for (const char *t = vkm_config.token; *t && o + 4 < sizeof tok; t++) {
      unsigned char ch = (unsigned char)*t;
      bool unreserved = ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') || (ch >= '0' && ch <= '9') || strchr("-._~", ch);
      if (unreserved)
        tok[o++] = (char)ch;
      else o += (size_t)snprintf(tok + o, sizeof tok - o, "%%%02X", ch);
    }
    tok[o] = 0;
  }
  snprintf(url, sizeof url, "http://%s:%d/%s", host, port, tok);

  if (vkm_config.url_file[0]) {
    char path[1100], tmp[1200];
    if (not_root) snprintf(path, sizeof path, "%s.%d", vkm_config.url_file, vkm_target_pid());
    else snprintf(path, sizeof path, "%s", vkm_config.url_file);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t n = strlen(url);
    url[n] = '\n';
    bool ok = fd >= 0 && write(fd, url, n + 1) == (ssize_t)(n + 1);
    url[n] = 0;
    if (fd >= 0) close(fd);
    if (!ok || rename(tmp, path) < 0) {
      vkm_say("error", "VALKMEM_URL_FILE=%s: %s", path, strerror(errno));
      unlink(tmp);
    }
    return;
  }
  if (vkm_config.quiet || not_root) return; /* one line per tree */
  char **argv = NULL;
  int argc = vkm_argv(&argv);
  const char *prog = argc > 0 && argv && argv[0] ? argv[0] : "?";
  const char *slash = strrchr(prog, '/');
  if (slash && slash[1]) prog = slash + 1;
  char line[800];
  const char *view = getenv("VALKMEM_VIEW"); /* `valkmem view FILE`: no process behind it (agent.c) */
  int n = view ? snprintf(line, sizeof line, "valkmem: dashboard of the saved %s: %s\n", view, url)
               : snprintf(line, sizeof line, "valkmem: dashboard for %s (pid %d): %s\n", prog, vkm_target_pid(), url);
  if (n > 0) {
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    vkm_write_stderr(line, (size_t)n);
  }
}

