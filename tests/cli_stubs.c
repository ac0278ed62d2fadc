/* cli_stubs.c - what the CLI's units link instead of the agent process:
 * launch.c starts one for run/gate, which the units never do. */
#include "agent.h"

int vkm_agentd_run(vkm_agentd_t *d) {
  (void)d;
  return 1;
}

/* The agent's configuration (segread.c in the real executable). */
vkm_config_t vkm_config;
