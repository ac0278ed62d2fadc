/* main.c - the `valkmem` launcher: dispatch to a command. */
#include "cli.h"
#include "../agent.h"

#include <string.h>

static const char usage[] =
    "usage: valkmem <command> [options] [-- CMD [ARGS...]]\n"
    "\n"
    "Memory diagnostics for any native program, without recompiling it.\n"
    "\n"
    "Commands:\n"
    "  run     run a command under the shim and summarise its memory use\n"
    "  gate    run a command and fail when its memory exceeds limits or a baseline (CI)\n"
    "  diff    compare two reports, metric by metric and site by site\n"
    "  export  convert a report to pprof or folded stacks\n"
    "  view    serve the dashboard for a saved report or snapshot\n"
    "  attach  serve the dashboard of a process that runs without an agent (VALKMEM_AGENT=0)\n"
    "\n"
    "`valkmem <command> --help` describes each command.\n"
    "Exit status 2 means a usage or configuration error.\n";

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage, stderr);
    vkm_cli_err("no command given (run, gate, diff, export, view, attach)");
    return VKM_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    fputs(usage, stdout);
    return 0;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("valkmem 0.1.0\n");
    return 0;
  }
  static const struct {
    const char *name;
    int (*fn)(int, char **);
  } cmds[] = {
      {"run", vkm_cmd_run},       {"gate", vkm_cmd_gate}, {"diff", vkm_cmd_diff},
      {"export", vkm_cmd_export}, {"view", vkm_cmd_view},
      {"agent", vkm_cmd_agent},   {"attach", vkm_cmd_attach},
  };
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (strcmp(cmd, cmds[i].name) == 0) return cmds[i].fn(argc - 1, argv + 1);
  vkm_cli_err("unknown command \"%s\" (commands: run, gate, diff, export, view, attach; see valkmem --help)", cmd);
  return VKM_EXIT_USAGE;
}
