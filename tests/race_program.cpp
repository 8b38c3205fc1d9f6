// A deliberately racy program (Go's `go run -race` demonstration): two goroutines increment a
// plain int with no synchronisation, in parallel on two workers. Built and run only in the
// ThreadSanitizer build, where tests/race_test.sh expects TSan to report the race.
#include <goro/goro.hpp>

#include <atomic>
#include <cstdio>

int main() {
    goro::set_gomaxprocs(2);
    static int counter = 0;           // racy on purpose
    static std::atomic<int> ready{0}; // start both loops together, so they overlap in time
    goro::WaitGroup wg;
    wg.add(2);
    for (int g = 0; g < 2; ++g)
        goro::go([&wg] {
            ready.fetch_add(1);
            while (ready.load() < 2) {
            }
            for (int i = 0; i < 100000; ++i) ++counter;
            wg.done();
        });
    wg.wait();
    std::printf("counter=%d\n", counter);
    return 0;
}
