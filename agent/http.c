/* http.c - the HTTP/1.1 + SSE server of the agent thread. (stub) */
#include "agent.h"
int vkm_http_start(void) { return 0; }
void vkm_http_poll(int timeout_ms) { (void)timeout_ms; }
void vkm_http_broadcast_tick(void) {}
void vkm_http_stop(void) {}
int vkm_http_port(void) { return 0; }
void vkm_http_forget(void) {}
