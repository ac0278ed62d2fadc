/* gate_text.h - the gate's phrasing, shared by its outputs (gate_text.c):
 * the human summary and the JSON report (gate_out.c), and the CI formats
 * (gate_ci.c). Private to agent/cli/gate_*.c. */
#ifndef VKM_GATE_TEXT_H
#define VKM_GATE_TEXT_H

#include "cli.h"

/* A value as the summary shows it: a count, or a size ("1.00 MiB (1048576 B)"). */
const char *vkm_gate_fmt_val(bool is_size, uint64_t v, char *buf, size_t len);
/* The command as a shell would take it back, quoted where needed. */
void vkm_gate_command_line(vkm_buf_t *b, char *const *argv);
/* How the started command ended: "exited with 0", "crashed: killed by SIGSEGV (signal 11)". */
void vkm_gate_command_outcome(vkm_buf_t *b, const vkm_gate_run_t *run);
/* One check: "max-leak: live heap at exit ... 1.00 MiB > limit 0 B". */
void vkm_gate_check_line(vkm_buf_t *b, const vkm_check_t *c);
/* How a process of the tree ended, its verdict, why it was not checked. */
void vkm_gate_proc_outcome(vkm_buf_t *b, const vkm_gate_proc_t *p);
bool vkm_gate_proc_crashed(const vkm_gate_proc_t *p);
const char *vkm_gate_proc_verdict(const vkm_gate_proc_t *p);
void vkm_gate_proc_reason(vkm_buf_t *b, const vkm_gate_proc_t *p, const vkm_gate_opts_t *o);
/* The tree's verdict line: "valkmem gate: FAIL: 1 of 3 process(es) failed (...)". */
void vkm_gate_verdict_line(vkm_buf_t *b, const vkm_gate_run_t *run);
/* "proc_leaky (pid 1234)". */
void vkm_gate_proc_title(vkm_buf_t *b, const vkm_gate_proc_t *p);

#endif
