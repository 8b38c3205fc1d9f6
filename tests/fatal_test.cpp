// tests/fatal_test.cpp: runs the scenarios of fatal_programs.cpp as subprocesses and checks
// their exit status and what they print on stderr. A scenario that hangs (a deadlock that was
// not detected) is killed after a generous limit and fails its test.
#include <catch2/catch.hpp>
#include <goro/detail/platform.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <string>
#include <vector>

#ifndef GORO_FATAL_PROGRAMS
#error "GORO_FATAL_PROGRAMS must name the fatal_programs executable"
#endif

extern char** environ;

namespace {

struct Outcome {
    bool exited = false;   // ended by exit(), not by a signal or the time limit
    int status = -1;       // exit status when exited
    int signal = 0;        // terminating signal otherwise
    bool timed_out = false;
    std::string out, err;
};

// run() starts fatal_programs <scenario> with stdout and stderr on pipes, and `env` (NAME=value)
// added to its environment; it reads both until the child closes them, and reaps it; past
// `limit` it kills the child.
Outcome run(const std::string& scenario, const std::vector<std::string>& env = {},
            std::chrono::seconds limit = std::chrono::seconds(60)) {
    Outcome o;
    int out[2], err[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    std::string path = GORO_FATAL_PROGRAMS;
    std::vector<char*> argv{path.data(), const_cast<char*>(scenario.c_str()), nullptr};
    std::vector<std::string> vars(env);
    for (char** e = environ; *e; ++e) vars.emplace_back(*e);  // the first of a name wins
    std::vector<char*> envp;
    for (std::string& v : vars) envp.push_back(v.data());
    envp.push_back(nullptr);
    pid_t pid;
    int rc = ::posix_spawn(&pid, path.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    ::close(err[1]);
    REQUIRE(rc == 0);

    auto deadline = std::chrono::steady_clock::now() + limit;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    std::string* sinks[2] = {&o.out, &o.err};
    int open = 2;
    while (open > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            o.timed_out = true;
            ::kill(pid, SIGKILL);
            break;
        }
        int n = ::poll(fds, 2, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR) continue;
        REQUIRE(n >= 0);
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[4096];
            ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
            if (r > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(r));
            } else if (r == 0 || errno != EINTR) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) ::close(f.fd);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) {
        o.exited = true;
        o.status = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        o.signal = WTERMSIG(status);
    }
    return o;
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

void check_fatal(const std::string& scenario, const std::string& message) {
    Outcome o = run(scenario);
    INFO("scenario: " << scenario << "\nstderr:\n" << o.err << "\nstdout:\n" << o.out);
    CHECK_FALSE(o.timed_out);
    CHECK(o.exited);
    CHECK(o.status == 2);
    CHECK(contains(o.err, message));
}

void check_ok(const std::string& scenario) {
    Outcome o = run(scenario);
    INFO("scenario: " << scenario << "\nstderr:\n" << o.err << "\nstdout:\n" << o.out);
    CHECK_FALSE(o.timed_out);
    CHECK(o.exited);
    CHECK(o.status == 0);
    CHECK(contains(o.out, "ok"));
    CHECK_FALSE(contains(o.err, "fatal error"));
    CHECK_FALSE(contains(o.err, "panic"));
}

const std::string deadlock = "fatal error: all goroutines are asleep - deadlock!";

}  // namespace

TEST_CASE("fatal: the scenario runner rejects an unknown scenario", "[fatal]") {
    Outcome o = run("no_such_scenario");
    CHECK(o.exited);
    CHECK(o.status == 64);
    CHECK(contains(o.err, "deadlock_no_goroutines"));
}

TEST_CASE("fatal: deadlock with no goroutines at all", "[fatal][deadlock]") {
    check_fatal("deadlock_no_goroutines", deadlock);
}

TEST_CASE("fatal: deadlock with 100 goroutines parked on a Mutex held forever",
          "[fatal][deadlock]") {
    check_fatal("deadlock_mutex", deadlock);
}

TEST_CASE("fatal: deadlock with 100 goroutines parked on a WaitGroup", "[fatal][deadlock]") {
    check_fatal("deadlock_waitgroup", deadlock);
}

TEST_CASE("fatal: deadlock with goroutines parked on a Cond", "[fatal][deadlock]") {
    check_fatal("deadlock_cond", deadlock);
}

TEST_CASE("fatal: deadlock once the last timer has fired", "[fatal][deadlock]") {
    check_fatal("deadlock_after_sleep", deadlock);
}

TEST_CASE("fatal: deadlock once a plain thread that used the runtime has exited",
          "[fatal][deadlock]") {
    check_fatal("deadlock_after_known_thread_exits", deadlock);
}

TEST_CASE("fatal: deadlock when a plain thread's exit is the last event", "[fatal][deadlock]") {
    check_fatal("deadlock_when_known_thread_exits_last", deadlock);
}

TEST_CASE("fatal: deadlock with two plain threads parked", "[fatal][deadlock]") {
    check_fatal("deadlock_two_threads", deadlock);
}

TEST_CASE("fatal: deadlock while blocking-pool threads expire", "[fatal][deadlock][blocking]") {
    check_fatal("deadlock_while_pool_threads_expire", deadlock);
}

TEST_CASE("fatal: an exception escaping a goroutine is a panic", "[fatal][panic]") {
    Outcome o = run("panic_runtime_error");
    INFO("stderr:\n" << o.err);
    CHECK_FALSE(o.timed_out);
    CHECK(o.exited);
    CHECK(o.status == 2);
    CHECK(contains(o.err, "panic: boom"));
    CHECK(contains(o.err, "goroutine "));
}

TEST_CASE("fatal: a non-std exception escaping a goroutine is a panic", "[fatal][panic]") {
    Outcome o = run("panic_non_std");
    INFO("stderr:\n" << o.err);
    CHECK(o.exited);
    CHECK(o.status == 2);
    CHECK(contains(o.err, "panic: "));
    CHECK(contains(o.err, "goroutine "));
}

TEST_CASE("fatal: unlocking an unlocked Mutex", "[fatal][misuse]") {
    check_fatal("unlock_unlocked_mutex", "fatal error: sync: unlock of unlocked mutex");
    check_fatal("unlock_unlocked_mutex_in_goroutine",
                "fatal error: sync: unlock of unlocked mutex");
}

TEST_CASE("fatal: unlocking an unlocked RWMutex", "[fatal][misuse]") {
    check_fatal("unlock_unlocked_rwmutex", "fatal error: sync: Unlock of unlocked RWMutex");
}

TEST_CASE("fatal: no false deadlock while a goroutine sleeps", "[fatal][deadlock]") {
    check_ok("ok_goroutine_sleeps_then_releases");
}

TEST_CASE("fatal: no false deadlock while a plain thread will release the waiters",
          "[fatal][deadlock]") {
    check_ok("ok_thread_releases");
}

TEST_CASE("fatal: no false deadlock while a goroutine is in blocking()", "[fatal][deadlock]") {
    check_ok("ok_blocking_call");
}

TEST_CASE("fatal: no false deadlock while a plain thread that used the runtime is busy",
          "[fatal][deadlock]") {
    check_ok("ok_known_thread_releases");
}

TEST_CASE("fatal: no false deadlock while every known plain thread is parked but another is busy",
          "[fatal][deadlock]") {
    check_ok("ok_unknown_thread_releases_parked_threads");
}

TEST_CASE("fatal: no false deadlock while blocking-pool threads expire",
          "[fatal][deadlock][blocking]") {
    check_ok("ok_thread_releases_while_pool_threads_expire");
}

TEST_CASE("fatal: GORO_MAX_BLOCKING_THREADS caps the blocking pool", "[fatal][blocking]") {
    Outcome o = run("blocking_cap_from_env", {"GORO_MAX_BLOCKING_THREADS=2"});
    INFO("stderr:\n" << o.err << "\nstdout:\n" << o.out);
    CHECK(o.exited);
    CHECK(o.status == 0);
    CHECK(contains(o.out, "ok: at most 2 calls at once"));
}

TEST_CASE("fatal: no thread for blocking() and none in the pool is Go's newosproc error",
          "[fatal][blocking]") {
    Outcome o = run("newosproc_without_pool_thread");
    INFO("stderr:\n" << o.err << "\nstdout:\n" << o.out);
    if (o.exited && o.status == 77) {
        WARN("seccomp is not available: thread creation cannot be made to fail");
        return;
    }
    CHECK(o.exited);
    CHECK(o.status == 2);
    CHECK(contains(o.err, "runtime: failed to create new OS thread (have "));
    CHECK(contains(o.err, " already; errno=11)"));
    CHECK(contains(o.err, "fatal error: newosproc"));
}

TEST_CASE("fatal: a call that cannot get a thread waits for the pool's", "[fatal][blocking]") {
    Outcome o = run("ok_newosproc_with_pool_thread");
    INFO("stderr:\n" << o.err << "\nstdout:\n" << o.out);
    if (o.exited && o.status == 77) {
        WARN("seccomp is not available: thread creation cannot be made to fail");
        return;
    }
    CHECK(o.exited);
    CHECK(o.status == 0);
    CHECK(contains(o.out, "ok"));
}

TEST_CASE("fatal: no false deadlock while a worker beyond GOMAXPROCS still runs a goroutine",
          "[fatal][deadlock][gomaxprocs]") {
    check_ok("ok_gomaxprocs_shrinks_under_running_goroutines");
}

TEST_CASE("fatal: main may return while goroutines are parked", "[fatal]") {
    check_ok("ok_main_returns_with_parked_goroutines");
}

TEST_CASE("exit: goroutines computing over a global while main returns never see it destroyed",
          "[fatal][exit]") {
    // The use after free shows under AddressSanitizer; here the process must end cleanly, at
    // once (exit cuts the goroutines short: no static destructor runs under them).
    Outcome o = run("ok_exit_while_goroutines_compute");
    INFO("stderr:\n" << o.err << "\nstdout:\n" << o.out);
    CHECK(o.exited);
    CHECK(o.status == 0);
    CHECK(contains(o.out, "ok"));
    CHECK_FALSE(contains(o.out, "static destructor ran"));
    CHECK_FALSE(contains(o.err, "AddressSanitizer"));
}

TEST_CASE("exit: goroutines that yield while main returns stop before the destructors run",
          "[fatal][exit]") {
    Outcome o = run("ok_exit_while_goroutines_yield");
    INFO("stderr:\n" << o.err << "\nstdout:\n" << o.out);
    CHECK(o.exited);
    CHECK(o.status == 0);
    CHECK(contains(o.out, "ok"));
    CHECK(contains(o.out, "static destructor ran") == !GORO_TSAN);  // TSan builds: _exit
    CHECK_FALSE(contains(o.err, "AddressSanitizer"));
}

TEST_CASE("exit: static destructors run when every goroutine is parked, and none runs again",
          "[fatal][exit]") {
    Outcome o = run("ok_exit_runs_static_destructors");
    INFO("stderr:\n" << o.err << "\nstdout:\n" << o.out);
    CHECK(o.exited);
    CHECK(o.status == 0);
    CHECK(contains(o.out, GORO_TSAN ? "ok" : "ok\nstatic destructor ran"));  // TSan: _exit
    CHECK_FALSE(contains(o.out, "a parked goroutine ran after exit"));
}

TEST_CASE("exit: the status survives and buffered output is flushed when exit cuts goroutines "
          "short", "[fatal][exit]") {
    Outcome o = run("exit_status_with_running_goroutine");
    INFO("stderr:\n" << o.err << "\nstdout:\n" << o.out);
    CHECK(o.exited);
    CHECK(o.status == 3);
    CHECK(contains(o.out, "printf output cout output"));
    CHECK_FALSE(contains(o.out, "static destructor ran"));
}

TEST_CASE("exit: exit() on a goroutine ends the process with its status", "[fatal][exit]") {
    Outcome o = run("exit_from_goroutine");
    INFO("stderr:\n" << o.err << "\nstdout:\n" << o.out);
    CHECK(o.exited);
    CHECK(o.status == 4);
    CHECK(contains(o.out, "exiting from a goroutine"));
}

TEST_CASE("fatal: objects only parked goroutines reference are not leaks (LeakSanitizer)",
          "[fatal][lsan]") {
    Outcome o = run("ok_parked_goroutines_keep_their_objects");
    INFO("stderr:\n" << o.err);
    CHECK(o.exited);
    CHECK(o.status == 0);
    CHECK(contains(o.out, "ok"));
    CHECK_FALSE(contains(o.err, "LeakSanitizer"));
}

TEST_CASE("fatal: a goroutine's true leak is still found (LeakSanitizer)", "[fatal][lsan]") {
    Outcome o = run("leak_in_goroutine");
    INFO("stderr:\n" << o.err);
    CHECK(o.exited);
    CHECK(contains(o.out, "ok"));
#if GORO_ASAN
    CHECK(o.status != 0);
    CHECK(contains(o.err, "LeakSanitizer: detected memory leaks"));
    CHECK(contains(o.err, "leak_once"));
#else
    CHECK(o.status == 0);
#endif
}

TEST_CASE("fatal: running off a goroutine's stack hits the guard page and is reported",
          "[fatal][overflow]") {
    check_fatal("overflow_hard_guard", "stack overflow (stack size 65536)");
}

TEST_CASE("fatal: without a hard guard, the soft guard's canary reports the overflow",
          "[fatal][overflow]") {
    check_fatal("overflow_soft_guard", "stack overflow (stack size 65536)");
}

TEST_CASE("fatal: deep recursion that stays within the stack is no overflow", "[fatal][overflow]") {
    check_ok("ok_deep_recursion_within_stack");
}

// A frame that jumps over the first pages of the guard: 20 KiB below the stack's end
// (frame_over_stack, t_guard_skip.cpp), 27 KiB below it (a 32 KiB buffer after a deep recursion,
// t_guard_skip2.cpp), with stack-clash probes (what goro::goro compiles with) and without them
// (fatal_noprobe.cpp). With a one-page guard all of these wrote into the parked neighbour's
// stack and nothing was reported; the 64 KiB hard guard catches each as it happens.
TEST_CASE("fatal: a frame that jumps over the guard's first pages is a stack overflow",
          "[fatal][overflow]") {
    for (const char* scenario :
         {"overflow_frame_over_stack", "overflow_buffer_frame", "overflow_unprobed_buffer_frame"})
        check_fatal(scenario, "stack overflow (stack size 65536)");
}

// What the soft guard cannot do: the same frames skip the top of the soft guard, whose pages
// below the top one are never read, so no overflow is reported; but the writes land in the
// goroutine's own 64 KiB guard rather than in its neighbour's stack.
TEST_CASE("fatal: with soft guards only, such a frame is not reported but misses the neighbour",
          "[fatal][overflow]") {
    for (const char* scenario :
         {"soft_frame_over_stack", "soft_buffer_frame", "soft_unprobed_buffer_frame"}) {
        Outcome o = run(scenario);
        INFO("scenario: " << scenario << "\nstderr:\n" << o.err << "\nstdout:\n" << o.out);
        CHECK(o.exited);
        CHECK(o.status == 0);
        CHECK(contains(o.out, "A: 0 canary words overwritten"));
    }
}

TEST_CASE("fatal: the soft guard sees a write anywhere in its top page, not just its top word",
          "[fatal][overflow]") {
    check_fatal("overflow_soft_guard_partial", "stack overflow (stack size 65536)");
}

// Stacks of goroutines that exit after parking deep go back to the kernel but for what the
// pools may keep (a budget per worker, and the top pages): RSS, not time, is checked. Sanitizer
// shadow memory of the stacks is not given back, so the bound holds in plain builds only.
TEST_CASE("fatal: deep goroutines that exit do not keep their stacks' memory", "[fatal][stack]") {
    Outcome o = run("ok_deep_exits_give_back_memory");
    INFO("stderr:\n" << o.err << "\nstdout:\n" << o.out);
    REQUIRE(o.exited);
    REQUIRE(o.status == 0);
    long n = 0, parked = 0, after = 0, workers = 0;
    REQUIRE(std::sscanf(o.out.c_str(),
                        "%ld goroutines: rss +%ld KiB parked, +%ld KiB after they exited, %ld",
                        &n, &parked, &after, &workers) == 4);
    CHECK(parked >= n * 32);  // they did commit their frames
#if !GORO_ASAN && !GORO_TSAN
    // Each worker's budget (2 MiB) and the pools' top pages (64 a worker, 1,024 shared, 255
    // awaiting release: 5 MiB with 4 workers), plus slack; keeping every pooled stack whole would
    // take 37 MiB more.
    CHECK(after <= (8 + 2 * workers) * 1024);
#endif
}

// Deterministic scheduling (GORO_SCHED_SEED): the same seed replays the same interleaving, and
// other seeds give others.
std::string trace_for(const std::string& seed) {
    Outcome o = run("det_trace", {"GORO_SCHED_SEED=" + seed});
    INFO("seed " << seed << "\nstderr:\n" << o.err << "\nstdout:\n" << o.out);
    REQUIRE(o.exited);
    REQUIRE(o.status == 0);
    CHECK(contains(o.err, "goro: deterministic scheduling, GORO_SCHED_SEED="));
    auto at = o.out.find("trace ");
    REQUIRE(at != std::string::npos);
    return o.out.substr(at);
}

TEST_CASE("deterministic scheduling replays an interleaving from its seed", "[fatal][det]") {
    for (const char* seed : {"1", "42", "987654321"}) {
        std::string first = trace_for(seed);
        CHECK(first.size() > 30);  // 16 turns, 8 sends, 9 receive rounds
        CHECK(trace_for(seed) == first);
        CHECK(trace_for(seed) == first);
    }
}

TEST_CASE("deterministic scheduling: different seeds give different interleavings",
          "[fatal][det]") {
    std::vector<std::string> traces;
    for (int seed = 1; seed <= 8; ++seed) traces.push_back(trace_for(std::to_string(seed)));
    std::sort(traces.begin(), traces.end());
    auto distinct = std::unique(traces.begin(), traces.end()) - traces.begin();
    INFO("distinct traces among 8 seeds: " << distinct);
    CHECK(distinct >= 4);
}

TEST_CASE("deterministic scheduling: \"random\" picks a seed and prints it", "[fatal][det]") {
    Outcome o = run("det_trace", {"GORO_SCHED_SEED=random"});
    INFO("stderr:\n" << o.err);
    CHECK(o.status == 0);
    auto at = o.err.find("GORO_SCHED_SEED=");
    REQUIRE(at != std::string::npos);
    std::string seed = o.err.substr(at + 16, o.err.find('\n', at) - at - 16);
    CHECK(trace_for(seed) == o.out.substr(o.out.find("trace ")));
}

TEST_CASE("deterministic scheduling: a bad seed is a clear error", "[fatal][det]") {
    Outcome o = run("det_trace", {"GORO_SCHED_SEED=banana"});
    CHECK(o.status == 2);
    CHECK(contains(o.err, "GORO_SCHED_SEED must be a positive integer"));
}

TEST_CASE("fatal: running out of memory for goroutine stacks is a clear error", "[fatal][oom]") {
    // Sanitizers reserve terabytes of shadow memory up front: no address-space limit for them.
#if !GORO_ASAN && !GORO_TSAN
    check_fatal("oom_stacks", "out of memory allocating goroutine stack");
#endif
}

TEST_CASE("fatal: a goroutine sleeping for duration::max() is no deadlock, as in Go",
          "[fatal][deadlock][huge]") {
    // The program hangs (Go's does): killed at the limit, it must not have reported anything.
    Outcome o = run("hang_sleep_forever", {}, std::chrono::seconds(1));
    INFO("stderr:\n" << o.err);
    CHECK(o.timed_out);
    CHECK_FALSE(contains(o.err, deadlock));
}

TEST_CASE("fatal: 100,000-deep context chains are cancelled, searched and dropped on a goroutine",
          "[fatal][context][overflow]") {
    check_ok("ok_ctx_cancel_deep_chain");
    check_ok("ok_ctx_drop_deep_values");
    check_ok("ok_ctx_lookup_deep_values");
}
