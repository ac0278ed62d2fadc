#!/bin/bash
# realprog_java.sh - javac compiles a small program and a JVM runs it:
# threads, a few hundred thousand objects, a child process, a non-zero exit.
# Both javac and java are JVMs under the shim.
set -eu
cat >Main.java <<'JAVA'
import java.util.*;
public class Main {
  public static void main(String[] args) throws Exception {
    List<String> l = new ArrayList<>();
    for (int i = 0; i < 300000; i++) l.add("s" + i);
    long[] sums = new long[4];
    Thread[] ts = new Thread[4];
    for (int t = 0; t < 4; t++) {
      final int k = t;
      ts[t] = new Thread(() -> {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < 100000; i++) b.append(i % 10);
        sums[k] = b.chars().sum();
      });
      ts[t].start();
    }
    for (Thread t : ts) t.join();
    System.out.println(l.size() + " " + l.get(12345) + " " + Arrays.toString(sums));
    Process p = new ProcessBuilder("echo", "child").inheritIO().start();
    System.exit(p.waitFor() + 3);
  }
}
JAVA
javac -J-Xmx256m Main.java
exec java -Xmx256m -cp . Main
