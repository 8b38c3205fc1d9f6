// worker_pool: a fixed pool of workers fed by a jobs channel, results on another channel.
//
// The Go original (the tutorials' worker pool, with the WaitGroup of their "good concurrency"):
//
//     func worker(id int, jobs <-chan int, results chan<- int) {
//         for j := range jobs {
//             fmt.Println("worker", id, "processing job", j)
//             time.Sleep(time.Second)
//             results <- j * 2
//         }
//     }
//     func main() {
//         jobs := make(chan int, 100)
//         results := make(chan int, 100)
//         var wg sync.WaitGroup
//         for w := 1; w <= 3; w++ {
//             wg.Add(1)
//             go func(id int) { defer wg.Done(); worker(id, jobs, results) }(w)
//         }
//         for j := 1; j <= 9; j++ { jobs <- j }
//         close(jobs)
//         go func() { wg.Wait(); close(results) }()
//         for r := range results { sum += r }
//     }
//
// The second of work is 50 ms here. Prints which worker took which job and the sum of the
// results; exits 1 if the sum is wrong.

#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

void worker(int id, goro::RecvChannel<int> jobs, goro::SendChannel<int> results) {
    for (int j : jobs) {
        std::printf("worker %d processing job %d\n", id, j);
        goro::sleep_for(50ms);
        results.send(j * 2);
    }
}

int main() {
    constexpr int num_workers = 3;
    constexpr int num_jobs = 9;
    auto start = goro::Clock::now();

    goro::Channel<int> jobs(100);
    goro::Channel<int> results(100);
    goro::WaitGroup wg;

    for (int w = 1; w <= num_workers; ++w) {
        wg.add(1);
        goro::go([&wg, jobs, results](int id) {
            worker(id, jobs, results);
            wg.done();
        }, w);
    }

    for (int j = 1; j <= num_jobs; ++j) jobs.send(j);
    jobs.close();

    goro::go([&wg, results] {
        wg.wait();
        results.close();
    });

    int sum = 0, count = 0;
    for (int r : results) {
        sum += r;
        ++count;
    }

    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(goro::Clock::now() - start);
    constexpr int want = num_jobs * (num_jobs + 1);  // 2 * (1 + ... + num_jobs)
    std::printf("%d results, sum %d (want %d), %d workers took %lld ms for %d x 50 ms of work\n",
                count, sum, want, num_workers, static_cast<long long>(ms.count()), num_jobs);
    return sum == want && count == num_jobs ? 0 : 1;
}
