/* fuzz_report.c - libFuzzer target: report import and everything the gate
 * does with an imported report (limits, suppressions, itself as baseline,
 * every output format). Properties: never crash or leak; the JUnit output
 * counts as many <failure> elements as the result has failures; the
 * annotation text has one line per failure. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static size_t count(const char *s, const char *needle) {
  size_t n = 0;
  for (const char *p = s; (p = strstr(p, needle)); p++) n++;
  return n;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size > 65536) return 0;
  char err[512] = "";
  cJSON *root = vkm_cli_json_parse((const char *)data, size, err, sizeof err);
  if (!root) return 0;
  cJSON *copy = cJSON_Duplicate(root, 1);
  vkm_report_t r, b;
  int rc = vkm_report_from_json(root, &r, err, sizeof err);
  int rc2 = vkm_report_from_json(copy, &b, err, sizeof err);
  if (rc != rc2) abort();
  if (rc == 0) {
    vkm_gate_opts_t o;
    memset(&o, 0, sizeof o);
    for (int i = 0; i < VKM_LIM_COUNT; i++) {
      o.set[i] = true;
      o.limit[i] = size * 16;
    }
    o.baseline = "self";
    o.have_tolerance = true;
    o.tol_pct = 5;
    vkm_supp_add(&o.supp, "leak", "fuzz");
    vkm_supp_add_defaults(&o.supp);
    vkm_gate_result_t res;
    vkm_gate_evaluate(&o, &o.supp, &r, &b, &res);
    char *argv[] = {"./x", NULL};
    vkm_gate_run_t run = {.argv = argv, .crashed = size & 1};
    run.child.signal = run.crashed ? 11 : 0;
    char *j = vkm_gate_junit(&res, &run, 0.5);
    if (count(j, "<failure ") != res.failures) abort();
    char *a = vkm_gate_annotations(&res, &run, "/w");
    if (count(a, "\n") != res.failures + (run.crashed ? 1 : 0)) abort();
    char *s = vkm_gate_step_summary(&res, &run, &o.supp);
    char *bj = vkm_gate_benchmark_json(&r, &res);
    FILE *devnull = fopen("/dev/null", "w");
    vkm_gate_print_human(devnull, &o, &o.supp, &r, &res, &run);
    vkm_print_summary(devnull, &r);
    fclose(devnull);
    vkm_gate_json(r.root, &o, &o.supp, &res, &run, 3);
    free(j);
    free(a);
    free(s);
    free(bj);
    vkm_gate_result_free(&res);
    vkm_supp_free(&o.supp);
  }
  vkm_report_free(&r);
  vkm_report_free(&b);
  return 0;
}
