/* view.c - `valkmem view FILE`: the dashboard for a saved report or an
 * exported snapshot, without the process that produced it.
 *
 * The agent's own HTTP code serves it: this process runs it with
 * VALKMEM_VIEW=FILE (agent.c, vkm_view_run), and FILE is answered as the
 * snapshot, report and history, with state "exited". */
#include "cli.h"
#include "../agent.h"
#include "../http_listen.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char view_usage[] =
    "usage: valkmem view FILE [--listen ADDR]\n"
    "\n"
    "Serves the dashboard for a saved report (VALKMEM_REPORT, valkmem gate --report)\n"
    "or a snapshot exported from the dashboard. Stop it with Ctrl-C.\n"
    "\n"
    "  --listen ADDR   HOST:PORT or PORT to listen on (default 127.0.0.1:0, a free port;\n"
    "                  the URL is printed). Anything but loopback needs VALKMEM_TOKEN.\n";

/* Checks FILE the way the agent will need it; says what is wrong. */
static int validate(const char *path) {
  cJSON *root = vkm_cli_json_load("file", path);
  if (!root) return -EINVAL;
  const char *why = vkm_schema_problem(root);
  cJSON_Delete(root);
  if (why) {
    vkm_cli_err("view: %s cannot be viewed: %s (expected a valkmem report or exported snapshot)", path, why);
    return -EINVAL;
  }
  return 0;
}

static bool valid_listen(const char *a, char *out, size_t len) {
  const char *colon = strrchr(a, ':');
  const char *port = colon ? colon + 1 : a;
  if (!*port || strlen(port) > 5) return false;
  for (const char *p = port; *p; p++)
    if (*p < '0' || *p > '9') return false;
  if (atoi(port) > 65535) return false;
  if (!colon) snprintf(out, len, "127.0.0.1:%s", port);
  else if (colon == a) snprintf(out, len, "127.0.0.1%s", a);
  else snprintf(out, len, "%s", a);
  return true;
}

int vkm_cmd_view(int argc, char **argv) {
  const char *file = NULL, *listen = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(view_usage, stdout);
      return 0;
    }
    if (strcmp(a, "--listen") == 0 || strncmp(a, "--listen=", 9) == 0) {
      if (a[8] == '=') listen = a + 9;
      else if (i + 1 < argc) listen = argv[++i];
      else listen = "";
      continue;
    }
    if (a[0] == '-' && a[1]) {
      vkm_cli_err("view: unknown option \"%s\" (see valkmem view --help)", a);
      return VKM_EXIT_USAGE;
    }
    if (file) {
      vkm_cli_err("view: more than one file given (\"%s\" and \"%s\")", file, a);
      return VKM_EXIT_USAGE;
    }
    file = a;
  }
  if (!file) {
    vkm_cli_err("view: no file given: valkmem view report.json [--listen ADDR]");
    return VKM_EXIT_USAGE;
  }
  char addr[300] = "";
  vkm_listen_addr_t la;
  /* What the dashboard would refuse (and then serve nothing): said now. */
  if (listen && (!valid_listen(listen, addr, sizeof addr) || vkm_listen_parse(addr, &la) != 0)) {
    vkm_cli_err("view: --listen: bad address \"%s\" (expected HOST:PORT or PORT with a numeric host, e.g. "
                "127.0.0.1:8080 or [::1]:8080)", listen);
    return VKM_EXIT_USAGE;
  }
  if (listen && !la.loopback && !getenv("VALKMEM_TOKEN")) {
    vkm_cli_err("view: --listen %s is not a loopback address: set VALKMEM_TOKEN (anyone who can reach it could "
                "read the report)", listen);
    return VKM_EXIT_USAGE;
  }
  if (validate(file) < 0) return VKM_EXIT_USAGE;
  char abs[PATH_MAX];
  if (!realpath(file, abs)) {
    vkm_cli_err("view: cannot resolve %s: %s", file, strerror(errno));
    return VKM_EXIT_USAGE;
  }
  /* The agent's dashboard, served by this process from the saved file: no
   * program runs, no shim is loaded. */
  setenv("VALKMEM_VIEW", abs, 1);
  vkm_config.http = true;
  vkm_config.tick_ms = 100;
  vkm_config.top_sites = 50;
  const char *envl = getenv("VALKMEM_LISTEN");
  snprintf(vkm_config.listen, sizeof vkm_config.listen, "%s", addr[0] ? addr : envl && *envl ? envl : "127.0.0.1:0");
  const char *tok = getenv("VALKMEM_TOKEN");
  if (tok) snprintf(vkm_config.token, sizeof vkm_config.token, "%s", tok);
  const char *uf = getenv("VALKMEM_URL_FILE");
  if (uf) snprintf(vkm_config.url_file, sizeof vkm_config.url_file, "%s", uf);
  fprintf(stderr, "valkmem: serving %s (Ctrl-C to stop)\n", abs);
  return vkm_view_run();
}
