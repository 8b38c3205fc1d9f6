// rate_limit: a steady limiter on time.Tick, and a bursty one: a buffered channel of tokens
// refilled by a tick.
//
// The Go originals (the tutorials' rate limiting pattern):
//
//     rateLimiter := time.Tick(100 * time.Millisecond)
//     for i := 0; i < 5; i++ {
//         <-rateLimiter
//         fmt.Printf("Performing work %d at %s\n", i, time.Now().Format("15:04:05.000"))
//     }
//
//     requests := make(chan int, 5)
//     limiter := make(chan time.Time, 3)           // burst capacity of 3
//     for i := 0; i < 3; i++ { limiter <- time.Now() }
//     go func() {
//         for t := range time.Tick(200 * time.Millisecond) {
//             select {
//             case limiter <- t:
//             default:                             // bucket is full, drop the tick
//             }
//         }
//     }()
//     for i := 1; i <= 5; i++ { requests <- i }
//     close(requests)
//     for req := range requests {
//         <-limiter
//         fmt.Printf("Processing request %d at %s\n", req, time.Now().Format("15:04:05.000"))
//     }
//
// Times print as milliseconds since the start of each part. Exits 1 if work went faster than
// the limit allows.

#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>
#include <vector>

using namespace std::chrono_literals;

namespace {

long long ms_since(goro::Clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(goro::Clock::now() - start)
        .count();
}

// Every event must come at least `period` after the previous one, and after the first `burst`
// which may come at once. Timers never fire early, so this holds exactly.
bool check(const char* what, const std::vector<long long>& at, long long period, int burst) {
    for (std::size_t i = burst; i < at.size(); ++i) {
        long long earliest = static_cast<long long>(i - burst + 1) * period;
        if (at[i] < earliest) {
            std::printf("FAIL: %s %zu at %lld ms, not before %lld ms\n", what, i, at[i], earliest);
            return false;
        }
    }
    return true;
}

bool rate_limited_work() {
    auto start = goro::Clock::now();
    std::vector<long long> at;
    goro::RecvChannel<goro::Clock::time_point> rate_limiter = goro::tick(100ms);
    for (int i = 0; i < 5; ++i) {
        rate_limiter.recv();
        at.push_back(ms_since(start));
        std::printf("Performing work %d at +%lld ms\n", i, at.back());
    }
    return check("work", at, 100, 0);
}

bool burst_rate_limiter() {
    auto start = goro::Clock::now();
    std::vector<long long> at;
    goro::Channel<int> requests(5);
    goro::Channel<goro::Clock::time_point> limiter(3);

    for (int i = 0; i < 3; ++i) limiter.send(goro::Clock::now());

    goro::go([limiter] {
        for (goro::Clock::time_point t : goro::tick(200ms))
            goro::select(goro::send(limiter, t), goro::default_case());
    });

    for (int i = 1; i <= 5; ++i) requests.send(i);
    requests.close();

    for (int req : requests) {
        limiter.recv();
        at.push_back(ms_since(start));
        std::printf("Processing request %d at +%lld ms\n", req, at.back());
    }
    return check("request", at, 200, 3);
}

}  // namespace

int main() {
    std::printf("-- one every 100 ms --\n");
    bool ok = rate_limited_work();
    std::printf("-- bursts of 3, then one every 200 ms --\n");
    ok = burst_rate_limiter() && ok;
    std::printf("rate_limit: %s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
