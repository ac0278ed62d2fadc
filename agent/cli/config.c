/* config.c - the gate's configuration file, so a repository keeps its
 * memory budget in one place:
 *
 *   { "max_leak": "0", "max_peak": "24 MB", "max_allocs": 100000,
 *     "suppressions": ["leak:third_party_init"], "suppressions_file": "lsan.supp",
 *     "baseline": "ci/memory-baseline.json", "tolerance": "10,64KiB",
 *     "error_exitcode": 3, "sampled": false, "default_suppressions": true,
 *     "report": "valkmem-gate.json", "junit": "valkmem.xml", "benchmark_json": "bench.json" }
 *
 * Command-line flags override the file. Input paths (baseline,
 * suppressions_file) are relative to the config file's directory; output
 * paths are relative to the working directory, like the flags. Unknown keys
 * are errors (a typo must not silently disable a limit); keys starting with
 * '_' or '$', and "comment", are ignored. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int vkm_parse_tolerance(const char *s, double *pct, uint64_t *abs_, const char **why) {
  *pct = 0;
  *abs_ = 0;
  const char *comma = s ? strchr(s, ',') : NULL;
  if (!comma) return vkm_parse_percent(s, pct, why);
  char head[64];
  size_t hl = (size_t)(comma - s);
  if (hl >= sizeof head) {
    *why = "percentage too long";
    return -EINVAL;
  }
  memcpy(head, s, hl);
  head[hl] = 0;
  int rc = vkm_parse_percent(head, pct, why);
  if (rc < 0) return rc;
  rc = vkm_parse_size(comma + 1, abs_, why);
  if (rc < 0 && why) {
    static char buf[160];
    snprintf(buf, sizeof buf, "absolute part: %s", *why);
    *why = buf;
  }
  return rc;
}

static char *resolve(const char *base_dir, const char *p) {
  if (p[0] == '/' || !base_dir || !base_dir[0] || strcmp(base_dir, ".") == 0) return strdup(p);
  size_t n = strlen(base_dir) + strlen(p) + 2;
  char *r = malloc(n);
  if (r) snprintf(r, n, "%s/%s", base_dir, p);
  return r;
}

static int get_string(const cJSON *v, const char *key, const char **out, char *err, size_t errlen) {
  if (!cJSON_IsString(v) || !v->valuestring) {
    snprintf(err, errlen, "key \"%s\": expected a string", key);
    return -EINVAL;
  }
  *out = v->valuestring;
  return 0;
}

int vkm_config_apply(cJSON *cfg, vkm_gate_opts_t *o, const bool *cmdline, const char *base_dir, char *err,
                     size_t errlen) {
  if (!cJSON_IsObject(cfg)) {
    snprintf(err, errlen, "the top level is not a JSON object");
    return -EINVAL;
  }
  const cJSON *v;
  cJSON_ArrayForEach(v, cfg) {
    const char *key = v->string ? v->string : "";
    const char *s;
    int id = -1;
    for (int i = 0; i < VKM_LIM_COUNT; i++)
      if (strcmp(key, vkm_limit_info[i].key) == 0) id = i;
    if (id >= 0) {
      uint64_t val;
      const char *why = NULL;
      if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d) || d < 0 || d != floor(d) || d >= 18446744073709551616.0) {
          snprintf(err, errlen, "key \"%s\": %g is not a whole non-negative number", key, d);
          return -EINVAL;
        }
        val = (uint64_t)d;
      } else if (cJSON_IsString(v)) {
        int rc = vkm_limit_info[id].is_size ? vkm_parse_size(v->valuestring, &val, &why)
                                            : vkm_parse_count(v->valuestring, &val, &why);
        if (rc < 0) {
          snprintf(err, errlen, "key \"%s\": bad %s \"%.80s\": %s", key, vkm_limit_info[id].is_size ? "size" : "number",
                   v->valuestring, why);
          return -EINVAL;
        }
      } else {
        snprintf(err, errlen, "key \"%s\": expected a %s (string like \"24 MB\" or a number)", key,
                 vkm_limit_info[id].is_size ? "size" : "count");
        return -EINVAL;
      }
      if (!cmdline[id]) {
        o->set[id] = true;
        o->limit[id] = val;
      }
    } else if (strcmp(key, "suppressions") == 0) {
      if (!cJSON_IsArray(v)) {
        snprintf(err, errlen, "key \"suppressions\": expected an array of \"leak:<pattern>\" strings");
        return -EINVAL;
      }
      const cJSON *e;
      int i = 0;
      cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e)) {
          snprintf(err, errlen, "key \"suppressions\"[%d]: expected a \"leak:<pattern>\" string", i);
          return -EINVAL;
        }
        char src[64], perr[256];
        snprintf(src, sizeof src, "config suppressions[%d]", i);
        size_t before = o->supp.n;
        if (strchr(e->valuestring, '\n') ||
            vkm_supp_parse(&o->supp, e->valuestring, strlen(e->valuestring), src, perr, sizeof perr) < 0 ||
            o->supp.n != before + 1) {
          snprintf(err, errlen, "key \"suppressions\"[%d]: \"%.80s\" is not leak:<pattern>", i, e->valuestring);
          return -EINVAL;
        }
        /* The parser names the source "config suppressions[i]:1"; drop ":1". */
        char *c = strrchr(o->supp.v[o->supp.n - 1].source, ':');
        if (c) *c = 0;
        i++;
      }
    } else if (strcmp(key, "suppressions_file") == 0) {
      if (get_string(v, key, &s, err, errlen)) return -EINVAL;
      char *p = resolve(base_dir, s);
      int rc = p ? vkm_supp_load(&o->supp, p) : -ENOMEM;
      free(p);
      if (rc < 0) {
        snprintf(err, errlen, "key \"suppressions_file\": cannot use \"%.200s\" (see above)", s);
        return -EINVAL;
      }
    } else if (strcmp(key, "baseline") == 0) {
      if (get_string(v, key, &s, err, errlen)) return -EINVAL;
      if (!cmdline[VKM_OPT_BASELINE]) {
        free(o->baseline);
        o->baseline = resolve(base_dir, s);
      }
    } else if (strcmp(key, "tolerance") == 0) {
      double pct;
      uint64_t ab = 0;
      if (cJSON_IsNumber(v)) {
        pct = v->valuedouble;
        if (!isfinite(pct) || pct < 0) {
          snprintf(err, errlen, "key \"tolerance\": %g is not a non-negative percentage", pct);
          return -EINVAL;
        }
      } else if (cJSON_IsString(v)) {
        const char *why = NULL;
        if (vkm_parse_tolerance(v->valuestring, &pct, &ab, &why) < 0) {
          snprintf(err, errlen, "key \"tolerance\": bad tolerance \"%.80s\": %s (expected PCT[,ABS], e.g. \"10,64KiB\")",
                   v->valuestring, why);
          return -EINVAL;
        }
      } else {
        snprintf(err, errlen, "key \"tolerance\": expected a percentage or \"PCT,ABS\"");
        return -EINVAL;
      }
      if (!cmdline[VKM_OPT_TOLERANCE]) {
        o->have_tolerance = true;
        o->tol_pct = pct;
        o->tol_abs = ab;
      }
    } else if (strcmp(key, "report") == 0 || strcmp(key, "junit") == 0 || strcmp(key, "benchmark_json") == 0) {
      if (get_string(v, key, &s, err, errlen)) return -EINVAL;
      int opt = key[0] == 'r' ? VKM_OPT_REPORT : key[0] == 'j' ? VKM_OPT_JUNIT : VKM_OPT_BENCH;
      char **dst = key[0] == 'r' ? &o->report : key[0] == 'j' ? &o->junit : &o->benchmark_json;
      if (!cmdline[opt]) {
        free(*dst);
        *dst = strdup(s);
      }
    } else if (strcmp(key, "error_exitcode") == 0) {
      if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
          v->valuedouble > 255) {
        snprintf(err, errlen, "key \"error_exitcode\": expected a whole number from 1 to 255");
        return -EINVAL;
      }
      if (!cmdline[VKM_OPT_EXITCODE]) {
        o->have_error_exitcode = true;
        o->error_exitcode = (int)v->valuedouble;
      }
    } else if (strcmp(key, "sampled") == 0 || strcmp(key, "default_suppressions") == 0) {
      if (!cJSON_IsBool(v)) {
        snprintf(err, errlen, "key \"%s\": expected true or false", key);
        return -EINVAL;
      }
      if (key[0] == 's') {
        if (!cmdline[VKM_OPT_SAMPLED]) o->sampled = cJSON_IsTrue(v);
      } else {
        if (!cmdline[VKM_OPT_NODEFSUPP]) o->no_default_supp = !cJSON_IsTrue(v);
      }
    } else if (key[0] == '_' || key[0] == '$' || strcmp(key, "comment") == 0) {
      continue;
    } else {
      snprintf(err, errlen, "unknown key \"%.80s\" (known: max_peak, max_rss, max_leak, max_leak_per_site, "
               "max_allocs, max_alloc_bytes, suppressions, suppressions_file, baseline, tolerance, report, "
               "junit, benchmark_json, error_exitcode, sampled, default_suppressions)", key);
      return -EINVAL;
    }
  }
  return 0;
}

int vkm_config_load_file(const char *path, vkm_gate_opts_t *o, const bool *cmdline) {
  cJSON *cfg = vkm_cli_json_load("config file", path);
  if (!cfg) return -EINVAL;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  else snprintf(dir, sizeof dir, ".");
  if (slash == dir) snprintf(dir, sizeof dir, "/");
  char err[512];
  int rc = vkm_config_apply(cfg, o, cmdline, dir, err, sizeof err);
  cJSON_Delete(cfg);
  if (rc < 0) vkm_cli_err("malformed config file %s: %s", path, err);
  return rc;
}
