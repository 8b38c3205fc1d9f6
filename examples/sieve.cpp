// sieve: the concurrent prime sieve, a chain of filter goroutines (from the Go tour and the Go
// repository's test/chan/sieve1.go).
//
// The Go original:
//
//     func Generate(ch chan<- int) {
//         for i := 2; ; i++ {
//             ch <- i
//         }
//     }
//     func Filter(in <-chan int, out chan<- int, prime int) {
//         for {
//             i := <-in
//             if i%prime != 0 {
//                 out <- i
//             }
//         }
//     }
//     func main() {
//         ch := make(chan int)
//         go Generate(ch)
//         for i := 0; i < 10; i++ {
//             prime := <-ch
//             fmt.Println(prime)
//             ch1 := make(chan int)
//             go Filter(ch, ch1, prime)
//             ch = ch1
//         }
//     }
//
// As in Go, the generator and the filters are left blocked when main returns. argv[1] is how
// many primes to print (default 100). Exits 1 if one is not prime or one is skipped.

#include <goro/goro.hpp>

#include <cstdio>
#include <cstdlib>

void generate(goro::SendChannel<int> ch) {
    for (int i = 2;; ++i) ch.send(i);
}

void filter(goro::RecvChannel<int> in, goro::SendChannel<int> out, int prime) {
    for (;;) {
        int i = *in.recv();
        if (i % prime != 0) out.send(i);
    }
}

bool is_prime(int n) {
    if (n < 2) return false;
    for (int d = 2; d * d <= n; ++d)
        if (n % d == 0) return false;
    return true;
}

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 100;
    bool ok = true;
    int last = 1;

    goro::Channel<int> ch;
    goro::go(generate, ch);
    for (int i = 0; i < n; ++i) {
        int prime = *ch.recv();
        std::printf("%d%c", prime, i % 10 == 9 || i == n - 1 ? '\n' : ' ');
        for (int k = last + 1; k < prime; ++k) ok = ok && !is_prime(k);  // none skipped
        ok = ok && is_prime(prime);
        last = prime;
        goro::Channel<int> ch1;
        goro::go(filter, ch, ch1, prime);
        ch = ch1;
    }
    std::printf("sieve: %d primes through %d, %zu goroutines in the chain: %s\n", n, last,
                goro::num_goroutine(), ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
