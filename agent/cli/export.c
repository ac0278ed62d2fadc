/* export.c - `valkmem export`: a saved report to pprof (gzip
 * profile.proto) or folded stacks, through agent/pprof.c's encoders (the
 * same ones /api/profile uses). */
#include "cli.h"
#include "agent.h"

#include <stdlib.h>
#include <string.h>

static const char export_usage[] =
    "usage: valkmem export (--pprof OUT.pb.gz | --folded OUT.txt)... [--type alloc|inuse] REPORT.json\n"
    "\n"
    "  --pprof FILE    gzip-compressed profile.proto (alloc_objects, alloc_space,\n"
    "                  inuse_objects, inuse_space; --type picks one pair)\n"
    "  --folded FILE   Brendan Gregg's folded stacks, in bytes (flamegraph.pl, speedscope)\n"
    "  --type T        alloc (bytes allocated) or inuse (live bytes at the report's time)\n";

int vkm_cmd_export(int argc, char **argv) {
  const char *pprof = NULL, *folded = NULL, *type = NULL, *in = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char **dst = NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(export_usage, stdout);
      return 0;
    }
    if (strcmp(a, "--pprof") == 0) dst = &pprof;
    else if (strcmp(a, "--folded") == 0) dst = &folded;
    else if (strcmp(a, "--type") == 0) dst = &type;
    if (dst) {
      if (i + 1 >= argc || !argv[i + 1][0]) {
        vkm_cli_err("export: %s needs a value", a);
        return VKM_EXIT_USAGE;
      }
      *dst = argv[++i];
    } else if (a[0] == '-' && a[1]) {
      vkm_cli_err("export: unknown option \"%s\" (see valkmem export --help)", a);
      return VKM_EXIT_USAGE;
    } else if (!in) {
      in = a;
    } else {
      vkm_cli_err("export: more than one report given (\"%s\" and \"%s\")", in, a);
      return VKM_EXIT_USAGE;
    }
  }
  if (type && strcmp(type, "alloc") != 0 && strcmp(type, "inuse") != 0) {
    vkm_cli_err("export: --type must be alloc or inuse, not \"%s\"", type);
    return VKM_EXIT_USAGE;
  }
  if (!pprof && !folded) {
    vkm_cli_err("export: nothing to do: give --pprof FILE and/or --folded FILE");
    return VKM_EXIT_USAGE;
  }
  if (!in) {
    vkm_cli_err("export: no report given: valkmem export --pprof out.pb.gz report.json");
    return VKM_EXIT_USAGE;
  }
  /* The report is read as diff and gate read it, so that a site whose
   * frames or figures are malformed is named, not exported as zero. */
  vkm_report_t rep;
  if (vkm_report_load("report", in, &rep) < 0) return VKM_EXIT_USAGE;
  cJSON *root = rep.root;
  const cJSON *sites = cJSON_GetObjectItemCaseSensitive(root, "sites");
  if (!sites || cJSON_GetArraySize(sites) == 0)
    vkm_cli_warn("export: %s has no call sites (was it written with sampling off?): the profile is empty", in);
  int status = 0;
  if (pprof) {
    unsigned char *out = NULL;
    size_t len = 0;
    int rc = vkm_pprof_from_report(root, type, &out, &len);
    if (rc < 0) {
      vkm_cli_err("export: cannot encode a pprof profile from %s: %s", in, strerror(-rc));
      status = VKM_EXIT_USAGE;
    } else if (vkm_cli_write_file("pprof profile", pprof, out, len) < 0) {
      status = VKM_EXIT_USAGE;
    }
    vkm_free(out);
  }
  if (folded) {
    char *out = NULL;
    size_t len = 0;
    int rc = vkm_folded_from_report(root, type, &out, &len);
    if (rc < 0) {
      vkm_cli_err("export: cannot encode folded stacks from %s: %s", in, strerror(-rc));
      status = VKM_EXIT_USAGE;
    } else if (vkm_cli_write_file("folded stacks", folded, out, len) < 0) {
      status = VKM_EXIT_USAGE;
    }
    vkm_free(out);
  }
  vkm_report_free(&rep);
  return status;
}
