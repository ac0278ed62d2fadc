/* proc_leaky.c - leaks one 4096-byte block from main, exits 0. Writes its
 * pid to $PROC_PIDFILE (when set) so the driver can look for it in the
 * gate's verdict. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  const char *pf = getenv("PROC_PIDFILE");
  if (pf) {
    char line[32];
    int n = snprintf(line, sizeof line, "%d\n", (int)getpid());
    int fd = open(pf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ssize_t w = write(fd, line, (size_t)n);
      (void)w;
      close(fd);
    }
  }
  char *leak = malloc(4096);
  memset(leak, 7, 4096);
  printf("proc_leaky\n");
  return 0;
}
