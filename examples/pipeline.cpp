// pipeline: generator -> square -> sum, then the same with fan-out to two squarers and a fan-in
// merge.
//
// The Go originals (the tutorials' pipeline and fan-out/fan-in patterns):
//
//     func gen(n int) <-chan int {
//         out := make(chan int)
//         go func() { for i := 1; i <= n; i++ { out <- i }; close(out) }()
//         return out
//     }
//     func sq(in <-chan int) <-chan int {
//         out := make(chan int)
//         go func() { for n := range in { out <- n * n }; close(out) }()
//         return out
//     }
//     func fanIn(input1, input2 <-chan int) <-chan int {
//         output := make(chan int)
//         go func() {
//             for {
//                 select {
//                 case val, ok := <-input1:
//                     if !ok { input1 = nil } else { output <- val }
//                 case val, ok := <-input2:
//                     if !ok { input2 = nil } else { output <- val }
//                 }
//                 if input1 == nil && input2 == nil { break }
//             }
//             close(output)
//         }()
//         return output
//     }
//     func main() {
//         for v := range sq(gen(n)) { sum += v }              // one line of stages
//         in := gen(n)
//         c1, c2 := sq(in), sq(in)                           // fan-out: two squarers share in
//         for v := range fanIn(c1, c2) { sum += v }          // fan-in
//     }
//
// (The tutorial's fanIn says `break` inside the select, which leaves only the select and loops
// forever in Go; here the loop ends when both inputs are nil, which is what it means.) A closed
// input is replaced by the nil channel, which select never chooses.
//
// Prints both sums and how the work split between the two squarers; exits 1 if a sum is wrong.

#include <goro/goro.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>

goro::RecvChannel<long long> gen(long long n) {
    goro::Channel<long long> out;
    goro::go([out, n] {
        for (long long i = 1; i <= n; ++i) out.send(i);
        out.close();
    });
    return out;
}

// sq() squares what comes in; `count`, if given, counts how many values it handled.
goro::RecvChannel<long long> sq(goro::RecvChannel<long long> in,
                                std::atomic<int>* count = nullptr) {
    goro::Channel<long long> out;
    goro::go([in, out, count] {
        for (long long n : in) {
            out.send(n * n);
            if (count) ++*count;
        }
        out.close();
    });
    return out;
}

goro::RecvChannel<long long> fan_in(goro::RecvChannel<long long> input1,
                                    goro::RecvChannel<long long> input2) {
    goro::Channel<long long> output;
    goro::go([input1, input2, output]() mutable {
        const goro::RecvChannel<long long> nil;
        while (!(input1 == nil && input2 == nil)) {
            goro::select(
                goro::recv(input1, [&](std::optional<long long> val) {
                    if (!val) input1 = nil;
                    else output.send(*val);
                }),
                goro::recv(input2, [&](std::optional<long long> val) {
                    if (!val) input2 = nil;
                    else output.send(*val);
                }));
        }
        output.close();
    });
    return output;
}

int main(int argc, char** argv) {
    long long n = argc > 1 ? std::atoll(argv[1]) : 1000;
    const long long want = n * (n + 1) * (2 * n + 1) / 6;  // 1 + 4 + 9 + ... + n*n

    // gen -> sq -> sum
    long long sum = 0;
    for (long long v : sq(gen(n))) sum += v;
    std::printf("gen -> sq -> sum:          sum of squares 1..%lld = %lld (want %lld)\n", n, sum,
                want);

    // gen -> (sq, sq) -> fan_in -> sum
    std::atomic<int> by1{0}, by2{0};
    goro::RecvChannel<long long> in = gen(n);
    goro::RecvChannel<long long> c1 = sq(in, &by1), c2 = sq(in, &by2);
    long long merged = 0;
    for (long long v : fan_in(c1, c2)) merged += v;
    std::printf("gen -> 2 x sq -> fan_in:   sum of squares 1..%lld = %lld (want %lld); "
                "squarer 1 did %d, squarer 2 did %d\n",
                n, merged, want, by1.load(), by2.load());

    return sum == want && merged == want && by1 + by2 == n ? 0 : 1;
}
