// bench/peers/peer.hpp: what the C++ peers of the side-by-side benchmarks share.
//
// The workloads, their sizes and the output format are the same for every peer (goro, Go,
// Boost.Fiber): bench/peers/go/main.go holds the Go copy of the constants below. A peer is a
// program that takes one workload name, runs it once and prints "<workload> <milliseconds>"
// ("idle <bytes-per-goroutine>"), or "<workload> n/a" when it cannot run that workload yet. A
// wrong result exits with status 1, a bad command line with 64 (bench/compare/run.py). Status 2
// is left to the runtimes: it is how Go and goro end on a panic or a deadlock.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <string>

namespace peer {

inline constexpr std::uint64_t skynet_size = 1'000'000;  // leaves; 1,111,111 goroutines in all
inline constexpr std::uint64_t skynet_div = 10;
inline constexpr int spawn_n = 1'000'000;
inline constexpr int pingpong_n = 1'000'000;
inline constexpr std::uint64_t buffered_n = 1'000'000;
inline constexpr std::size_t buffered_cap = 1024;
inline constexpr std::uint64_t mpmc_n = 1'000'000;  // in total, over all producers
inline constexpr int mpmc_procs = 4;                // producers, and as many consumers
inline constexpr std::size_t mpmc_cap = 128;
inline constexpr int idle_n = 100'000;

// sum_below() is 0 + 1 + ... + (n-1), what skynet, buffered and mpmc must add up to.
constexpr std::uint64_t sum_below(std::uint64_t n) { return n * (n - 1) / 2; }

// fail() reports a wrong result and exits with status 1.
[[noreturn]] inline void fail(const char* workload, const char* what, std::uint64_t got) {
    std::fprintf(stderr, "%s: %s %llu\n", workload, what, static_cast<unsigned long long>(got));
    std::exit(1);
}

// status_kb() reads a field of /proc/self/status given in kB ("VmRSS", "VmHWM").
inline long status_kb(const char* field) {
    std::ifstream f("/proc/self/status");
    std::string key = std::string(field) + ":", word;
    while (f >> word) {
        if (word == key) {
            long kb = 0;
            f >> kb;
            return kb;
        }
    }
    std::fprintf(stderr, "no %s in /proc/self/status\n", field);
    std::exit(1);
}

// Workloads maps a workload's name to its body. A timed workload returns nothing and is timed
// from outside; "idle" returns the bytes per parked goroutine itself.
struct Workloads {
    std::map<std::string, std::function<void()>> timed;
    std::function<long()> idle;  // empty when the peer cannot run it
};

inline constexpr const char* names[] = {"skynet", "spawn", "pingpong", "buffered", "mpmc", "idle"};

// run() runs the workload argv[1] names and prints its line; returns the exit status.
inline int run(int argc, char** argv, const Workloads& w) {
    std::string name = argc == 2 ? argv[1] : "";
    if (std::find(std::begin(names), std::end(names), name) == std::end(names)) {
        std::fprintf(stderr, "usage: %s skynet|spawn|pingpong|buffered|mpmc|idle\n", argv[0]);
        return 64;
    }
    if (name == "idle" && w.idle) {
        std::printf("idle %ld\n", w.idle());
        return 0;
    }
    auto it = w.timed.find(name);
    if (it == w.timed.end()) {
        std::printf("%s n/a\n", name.c_str());
        return 0;
    }
    auto start = std::chrono::steady_clock::now();
    it->second();
    std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - start;
    std::printf("%s %.1f\n", name.c_str(), ms.count());
    return 0;
}

}  // namespace peer
