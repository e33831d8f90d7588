// Instructions retired between a program's SIGSTOP marks, counted by single-stepping it
// under ptrace: the load-independent count of callgrind for code callgrind cannot run
// (valgrind has no AVX-512) on a machine without hardware counters (perf_event here
// reports "not supported"). probe.cpp, run with MARK=1, stops itself before and after
// each kernel call and names the call on stderr; this prints each span's count, less
// the count of an empty span (the marks' own instructions).
//
//   count <program> [args...]
#include <cstdio>
#include <csignal>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const pid_t pid = fork();
  if (pid == 0) {
    ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    execv(argv[1], argv + 1);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);  // the exec stop
  int forward = 0;           // the signal to hand on at the next resume
  bool stepping = false;
  long long steps = 0;
  for (;;) {
    ptrace(stepping ? PTRACE_SINGLESTEP : PTRACE_CONT, pid, nullptr,
           reinterpret_cast<void*>(static_cast<long>(forward)));
    if (waitpid(pid, &status, 0) < 0 || WIFEXITED(status) || WIFSIGNALED(status)) break;
    forward = 0;
    const int sig = WSTOPSIG(status);
    if (sig == SIGSTOP) {
      if (stepping) std::printf("%lld\n", steps);
      std::fflush(stdout);
      stepping = !stepping;
      steps = 0;
    } else if (sig == SIGTRAP && stepping) {
      ++steps;
    } else {
      forward = sig;
    }
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
