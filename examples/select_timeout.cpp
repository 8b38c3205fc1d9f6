// select_timeout: select over several channels, with a timeout from after(), and without
// blocking.
//
// The Go originals (the tutorials' select examples), with seconds scaled to tenths:
//
//     select {                                       // the first of two messages wins
//     case msg1 := <-ch1: fmt.Println("Received from ch1:", msg1)
//     case msg2 := <-ch2: fmt.Println("Received from ch2:", msg2)
//     }
//
//     go func() { time.Sleep(2 * time.Second); ch <- "Delayed message" }()
//     select {                                       // a timeout
//     case msg := <-ch:                  fmt.Println("Received:", msg)
//     case <-time.After(1 * time.Second): fmt.Println("Timeout: no message received")
//     }
//
//     select {                                       // non-blocking send and receive
//     case ch <- "Hello": fmt.Println("Sent message")
//     default:            fmt.Println("Channel full, couldn't send")
//     }
//
// Prints what each select chose; exits 1 if one chose wrongly.

#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

namespace {

bool ok = true;

void expect(bool cond, const char* what) {
    if (!cond) {
        std::printf("FAIL: %s\n", what);
        ok = false;
    }
}

// The first of two messages wins: ch1 is ready after 100 ms, ch2 after 200 ms.
void select_example() {
    goro::Channel<std::string> ch1, ch2;
    goro::go([ch1] {
        goro::sleep_for(100ms);
        ch1.send("Message from ch1");
    });
    goro::go([ch2] {
        goro::sleep_for(200ms);
        ch2.send("Message from ch2");
    });

    std::size_t chosen = goro::select(
        goro::recv(ch1, [](std::optional<std::string> msg1) {
            std::printf("Received from ch1: %s\n", msg1->c_str());
        }),
        goro::recv(ch2, [](std::optional<std::string> msg2) {
            std::printf("Received from ch2: %s\n", msg2->c_str());
        }));
    expect(chosen == 0, "ch1 should have won");
    ch2.recv();  // not in the Go original: let the second sender finish instead of leaking it
}

// select with a timeout: the message comes after `delay`, the timeout after 100 ms.
void select_with_timeout(goro::Clock::duration delay, bool want_timeout) {
    goro::Channel<std::string> ch(1);  // buffered, so that a late sender does not block
    goro::go([ch, delay] {
        goro::sleep_for(delay);
        ch.send("Delayed message");
    });

    auto start = goro::Clock::now();
    std::size_t chosen = goro::select(
        goro::recv(ch, [](std::optional<std::string> msg) {
            std::printf("Received: %s\n", msg->c_str());
        }),
        goro::recv(goro::after(100ms), [] { std::printf("Timeout: no message received\n"); }));
    auto waited = goro::Clock::now() - start;
    auto ms = [](goro::Clock::duration d) {
        return static_cast<long long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
    };
    std::printf("  (message due after %lld ms, waited %lld ms)\n", ms(delay), ms(waited));
    expect(chosen == (want_timeout ? 1u : 0u), want_timeout ? "should have timed out"
                                                            : "should have received");
    expect(!want_timeout || waited >= 100ms, "the timeout fired early");
    if (chosen == 1) {
        // Not in the Go original, whose unbuffered channel leaves the sender blocked forever:
        // here the late message lands in the buffer, and the sender is gone before main is.
        std::printf("  (the late message still arrives: %s)\n", ch.recv()->c_str());
    }
}

// Non-blocking send and receive on a channel with room for one.
void non_blocking_select() {
    goro::Channel<std::string> ch(1);
    for (int i = 0; i < 2; ++i) {
        std::size_t chosen = goro::select(
            goro::send(ch, std::string("Hello"), [] { std::printf("Sent message\n"); }),
            goro::default_case([] { std::printf("Channel full, couldn't send\n"); }));
        expect(chosen == static_cast<std::size_t>(i), "the buffer holds exactly one message");
    }
    for (int i = 0; i < 2; ++i) {
        std::size_t chosen = goro::select(
            goro::recv(ch, [](std::optional<std::string> msg) {
                std::printf("Received: %s\n", msg->c_str());
            }),
            goro::default_case([] { std::printf("No message available\n"); }));
        expect(chosen == static_cast<std::size_t>(i), "one message, then none");
    }
}

}  // namespace

int main() {
    std::printf("-- select: first of two --\n");
    select_example();
    std::printf("-- select with time.After: message too late --\n");
    select_with_timeout(200ms, true);
    std::printf("-- select with time.After: message in time --\n");
    select_with_timeout(20ms, false);
    std::printf("-- non-blocking select --\n");
    non_blocking_select();
    std::printf("select_timeout: %s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
