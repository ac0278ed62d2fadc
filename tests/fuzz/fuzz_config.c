/* fuzz_config.c - libFuzzer target: the gate's config file, from bytes
 * through the located JSON parser to vkm_config_apply. Properties: never
 * crash or leak; an error always comes with a message. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size > 65536) return 0;
  char err[512] = "";
  cJSON *cfg = vkm_cli_json_parse((const char *)data, size, err, sizeof err);
  if (!cfg) {
    if (!err[0]) abort();
    return 0;
  }
  vkm_gate_opts_t o;
  memset(&o, 0, sizeof o);
  bool cmdline[VKM_OPT_COUNT] = {0};
  cmdline[VKM_OPT_REPORT] = size & 1; /* exercise both override paths */
  err[0] = 0;
  /* base_dir under /nonexistent: a suppressions_file key must fail cleanly,
   * never read something real. */
  if (vkm_config_apply(cfg, &o, cmdline, "/nonexistent-valkmem-fuzz", err, sizeof err) < 0 && !err[0]) abort();
  cJSON_Delete(cfg);
  free(o.baseline);
  free(o.report);
  free(o.junit);
  free(o.benchmark_json);
  vkm_supp_free(&o.supp);
  return 0;
}
