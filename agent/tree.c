/* tree.c - the process tree that one agent serves: the table its workers
 * share (agent.h, vkm_tree_t), /api/processes, and handing a dashboard
 * connection to the worker that serves the process it asks for.
 *
 * Every worker serves its own process on its own port, and every worker
 * can answer for the whole tree: a request for /p/PID/... (or with
 * ?pid=PID) that is not its own goes, connection and all, to PID's worker
 * through that worker's control socket (SCM_RIGHTS), with the bytes
 * already read. So one URL shows every process of the tree.
 */
#include "agent.h"
#include "metrics.h"
#include "../interpose/segment.h"
#include "sys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

vkm_tree_t *vkm_tree;

vkm_tree_row_t *vkm_tree_find(int pid) {
  if (!vkm_tree || pid <= 0) return NULL;
  uint32_t n = __atomic_load_n(&vkm_tree->nrows, __ATOMIC_ACQUIRE);
  if (n > VKM_TREE_ROWS) n = VKM_TREE_ROWS;
  for (uint32_t i = n; i-- > 0;)
    if (vkm_tree->rows[i].pid == pid && __atomic_load_n(&vkm_tree->rows[i].state, __ATOMIC_ACQUIRE) != VKM_ROW_FREE)
      return &vkm_tree->rows[i];
  return NULL;
}

void vkm_end_json(cJSON *o, int kind, int code, int sig) {
  cJSON *e = cJSON_AddObjectToObject(o, "end");
  switch (kind) {
  case VKM_ENDED_EXIT:
    cJSON_AddStringToObject(e, "kind", "exit");
    cJSON_AddNumberToObject(e, "code", code);
    break;
  case VKM_ENDED_SIGNAL: {
    cJSON_AddStringToObject(e, "kind", "signal");
    cJSON_AddNumberToObject(e, "signal", sig);
    const char *nm = vkm_sys_signal_abbrev(sig);
    char buf[32];
    snprintf(buf, sizeof buf, "SIG%s", nm ? nm : "?");
    cJSON_AddStringToObject(e, "name", buf);
    break;
  }
  case VKM_ENDED_EXEC: cJSON_AddStringToObject(e, "kind", "exec"); break;
  default: cJSON_AddStringToObject(e, "kind", "unknown");
  }
}

static void add_end(cJSON *o, const vkm_tree_row_t *r) {
  if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) != VKM_ROW_EXITED) cJSON_AddNullToObject(o, "end");
  else vkm_end_json(o, r->end_kind, r->end_code, r->end_signal);
}

cJSON *vkm_tree_json(void) {
  if (!vkm_tree) return NULL;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "root", vkm_tree->root);
  cJSON_AddNumberToObject(o, "self", vkm_target_pid());
  cJSON *a = cJSON_AddArrayToObject(o, "processes");
  uint32_t n = __atomic_load_n(&vkm_tree->nrows, __ATOMIC_ACQUIRE);
  cJSON_AddBoolToObject(o, "truncated", n > VKM_TREE_ROWS);
  if (n > VKM_TREE_ROWS) n = VKM_TREE_ROWS;
  for (uint32_t i = 0; i < n; i++) {
    const vkm_tree_row_t *r = &vkm_tree->rows[i];
    int st = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
    if (st == VKM_ROW_FREE) continue;
    if (st == VKM_ROW_EXITED && r->end_kind == VKM_ENDED_EXEC) continue; /* its successor has the pid */
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "pid", r->pid);
    cJSON_AddNumberToObject(p, "ppid", r->ppid);
    char prog[sizeof r->program];
    memcpy(prog, r->program, sizeof prog);
    prog[sizeof prog - 1] = 0;
    cJSON_AddStringToObject(p, "program", prog);
    cJSON_AddStringToObject(p, "state", st == VKM_ROW_RUNNING ? "running" : "exited");
    cJSON_AddNumberToObject(p, "live_bytes", (double)__atomic_load_n(&r->live_bytes, __ATOMIC_RELAXED));
    cJSON_AddNumberToObject(p, "rss_bytes", (double)__atomic_load_n(&r->rss_bytes, __ATOMIC_RELAXED));
    cJSON_AddNumberToObject(p, "started_at", (double)r->started_ms);
    add_end(p, r);
    char url[32];
    snprintf(url, sizeof url, "/p/%d/", r->pid);
    cJSON_AddStringToObject(p, "url", url);
    cJSON_AddItemToArray(a, p);
  }
  return o;
}

size_t vkm_tree_metrics(vkm_metrics_proc_t *out, size_t max, char (*programs)[64]) {
  if (!vkm_tree) return (size_t)-1;
  if (!vkm_agent_is_root()) return 0; /* the root speaks for the tree; the others for themselves */
  uint32_t n = __atomic_load_n(&vkm_tree->nrows, __ATOMIC_ACQUIRE);
  if (n > VKM_TREE_ROWS) n = VKM_TREE_ROWS;
  size_t k = 0;
  for (uint32_t i = 0; i < n && k < max; i++) {
    const vkm_tree_row_t *r = &vkm_tree->rows[i];
    if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) != VKM_ROW_RUNNING) continue;
    memcpy(programs[k], r->program, sizeof programs[k]);
    programs[k][sizeof programs[k] - 1] = 0;
    out[k] = (vkm_metrics_proc_t){
        .pid = r->pid,
        .program = programs[k],
        .live_bytes = (double)__atomic_load_n(&r->live_bytes, __ATOMIC_RELAXED),
        .rss_bytes = (double)__atomic_load_n(&r->rss_bytes, __ATOMIC_RELAXED),
        .alloc_count = (double)__atomic_load_n(&r->alloc_count, __ATOMIC_RELAXED),
        .free_count = (double)__atomic_load_n(&r->free_count, __ATOMIC_RELAXED),
        .alloc_bytes = (double)__atomic_load_n(&r->alloc_usable, __ATOMIC_RELAXED),
        .free_bytes = (double)__atomic_load_n(&r->free_usable, __ATOMIC_RELAXED),
    };
    k++;
  }
  return k;
}

int vkm_tree_forward(int pid, int fd, const char *buf, size_t len, int port) {
  vkm_tree_row_t *r = vkm_tree_find(pid);
  if (!r) return -ESRCH;
  char path[sizeof r->sock];
  memcpy(path, r->sock, sizeof path);
  path[sizeof path - 1] = 0;
  if (!path[0]) return -ENOENT;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  memcpy(a.sun_path, path, strlen(path) + 1);
  int s = vkm_sys_socket(AF_UNIX, 0);
  if (s < 0) return -errno;
  struct timeval tv = {1, 0};
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc = 0;
  if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
    rc = -errno;
  } else {
    vkm_hello_t h = {.magic = VKM_HELLO_MAGIC, .version = VKM_SEG_VERSION, .pid = pid, .kind = VKM_HELLO_HTTP,
                     .port = port};
    uint32_t n = (uint32_t)len;
    struct iovec iov[3] = {{&h, sizeof h}, {&n, sizeof n}, {(void *)buf, len}};
    union {
      char b[CMSG_SPACE(sizeof(int))];
      struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3, .msg_control = u.b, .msg_controllen = sizeof u.b};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t w = sendmsg(s, &m, MSG_NOSIGNAL);
    if (w != (ssize_t)(sizeof h + sizeof n + len)) rc = w < 0 ? -errno : -EIO;
  }
  close(s);
  return rc;
}
