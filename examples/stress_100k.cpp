// stress_100k: a hundred thousand goroutines, twice.
//
// The Go original (the tutorials' goroutine stress test):
//
//     var wg sync.WaitGroup
//     count := 100000
//     wg.Add(count)
//     for i := 0; i < count; i++ {
//         go func(n int) {
//             defer wg.Done()
//             if n == 0 {
//                 fmt.Println("First goroutine running!")
//             }
//         }(i)
//     }
//     wg.Wait()
//     fmt.Println("All goroutines finished!")
//
// and a second round where every goroutine sends its number on one unbuffered channel, so all of
// them are alive and parked at once before main starts receiving:
//
//     ch := make(chan int)
//     for i := 0; i < count; i++ { go func(n int) { ch <- n }(i) }
//     fmt.Println(runtime.NumGoroutine())
//     for i := 0; i < count; i++ { sum += <-ch }
//
// argv[1] changes the count. Prints times and goroutine counts; exits 1 if a goroutine went
// missing.

#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>

using namespace std::chrono_literals;

namespace {

double ms_since(goro::Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(goro::Clock::now() - start).count();
}

// Goroutines call done() just before they return, so let the last few finish exiting.
std::size_t settled_goroutines() {
    auto deadline = goro::Clock::now() + 1s;
    while (goro::num_goroutine() != 0 && goro::Clock::now() < deadline) goro::sleep_for(1ms);
    return goro::num_goroutine();
}

}  // namespace

int main(int argc, char** argv) {
    const int count = argc > 1 ? std::atoi(argv[1]) : 100000;
    std::printf("%d goroutines, GOMAXPROCS %d\n", count, goro::gomaxprocs());

    // Round 1: WaitGroup.
    auto start = goro::Clock::now();
    goro::WaitGroup wg;
    wg.add(count);
    for (int i = 0; i < count; ++i) {
        goro::go([&wg](int n) {
            if (n == 0) std::printf("First goroutine running!\n");
            wg.done();
        }, i);
    }
    double spawned = ms_since(start);
    std::size_t alive = goro::num_goroutine();
    wg.wait();
    std::printf("All goroutines finished! spawned in %.1f ms (%zu still alive then), "
                "all done in %.1f ms\n", spawned, alive, ms_since(start));
    std::size_t left1 = settled_goroutines();
    std::printf("num_goroutine after: %zu\n", left1);

    // Round 2: everyone sends on one channel; all are parked at once before main receives.
    start = goro::Clock::now();
    goro::Channel<int> ch;
    for (int i = 0; i < count; ++i) goro::go([ch](int n) { ch.send(n); }, i);
    std::size_t parked = goro::num_goroutine();
    std::printf("%d goroutines spawned in %.1f ms; num_goroutine: %zu\n", count, ms_since(start),
                parked);
    long long sum = 0;
    for (int i = 0; i < count; ++i) sum += *ch.recv();
    const long long want = static_cast<long long>(count) * (count - 1) / 2;
    std::printf("received %d values in %.1f ms, sum %lld (want %lld)\n", count, ms_since(start),
                sum, want);
    std::size_t left2 = settled_goroutines();
    std::printf("num_goroutine after: %zu\n", left2);

    bool ok = sum == want && parked == static_cast<std::size_t>(count) && left1 == 0 && left2 == 0;
    std::printf("stress_100k: %s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
