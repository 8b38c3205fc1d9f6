// context_cancel: cancellation, deadlines and values with goro's Context.
//
// The Go originals (the tutorials' context section), with seconds scaled down:
//
//     ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
//     defer cancel()
//     result := make(chan string)
//     go doWork(ctx, result)
//     select {
//     case res := <-result: fmt.Println("Work completed:", res)
//     case <-ctx.Done():    fmt.Println("Work cancelled:", ctx.Err())
//     }
//
//     func doWork(ctx context.Context, result chan<- string) {
//         for i := 0; i < 5; i++ {
//             select {
//             case <-ctx.Done(): fmt.Println("Work cancelled early"); return
//             default:
//                 time.Sleep(500 * time.Millisecond)
//                 fmt.Printf("Work step %d completed\n", i+1)
//             }
//         }
//         result <- "All work completed"
//     }
//
//     ctx := context.WithValue(context.Background(), userIDKey, 12345)
//     if userID, ok := ctx.Value(userIDKey).(int); ok { ... }
//
//     parentCtx, parentCancel := context.WithCancel(context.Background())
//     childCtx, childCancel := context.WithTimeout(parentCtx, 5*time.Second)
//     go func() {
//         select {
//         case <-time.After(3 * time.Second):
//             fmt.Println("Work completed normally")
//         case <-childCtx.Done():
//             fmt.Println("Child context cancelled:", childCtx.Err())
//         }
//     }()
//     time.Sleep(1 * time.Second)
//     parentCancel()                                // cancels the child too
//
// Prints each outcome; exits 1 if one is not what the Go program would print.

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

void do_work(goro::Context ctx, goro::SendChannel<std::string> result, goro::WaitGroup* wg) {
    for (int i = 0; i < 5; ++i) {
        bool cancelled = false;
        goro::select(goro::recv(ctx.done(), [&] { cancelled = true; }),
                     goro::default_case([&] {
                         goro::sleep_for(50ms);
                         std::printf("Work step %d completed\n", i + 1);
                     }));
        if (cancelled) {
            std::printf("Work cancelled early\n");
            wg->done();
            return;
        }
    }
    result.send("All work completed");
    wg->done();
}

// Five 50 ms steps under a deadline of `timeout`. (The WaitGroup is not in the Go original: it
// keeps do_work's last line in this part's transcript.)
void context_example(goro::Clock::duration timeout, bool want_done) {
    auto [ctx, cancel] = goro::with_timeout(goro::background(), timeout);
    goro::Channel<std::string> result(1);
    goro::WaitGroup wg;
    wg.add(1);
    goro::go(do_work, ctx, result, &wg);

    bool completed = false;
    goro::select(goro::recv(result, [&](std::optional<std::string> res) {
                     std::printf("Work completed: %s\n", res->c_str());
                     completed = true;
                 }),
                 goro::recv(ctx.done(), [ctx = ctx] {  // clang < 16 cannot capture a binding
                     std::printf("Work cancelled: %s\n", ctx.err().message().c_str());
                 }));
    wg.wait();
    cancel();  // Go defers it
    expect(completed == want_done, want_done ? "the work should have completed in time"
                                             : "the deadline should have cancelled the work");
    expect(completed || ctx.err() == goro::errc::deadline_exceeded,
           "err() should be deadline_exceeded");
}

const goro::ContextKey<int> user_id_key{"userID"};

void authenticate_user(const goro::Context& ctx) {
    if (const int* user_id = ctx.value(user_id_key))
        std::printf("Authenticating user %d\n", *user_id);
}

void process_request(const goro::Context& ctx) {
    if (const int* user_id = ctx.value(user_id_key)) {
        std::printf("Processing request for user %d\n", *user_id);
        expect(*user_id == 12345, "the user id should be 12345");
    } else {
        std::printf("No user ID in context\n");
        expect(false, "the user id is missing");
    }
    authenticate_user(ctx);
}

void context_with_values() {
    goro::Context ctx = goro::with_value(goro::background(), user_id_key, 12345);
    process_request(ctx);
    expect(goro::background().value(user_id_key) == nullptr, "background() should have no values");
}

// The parent is cancelled after 100 ms; the child (deadline 500 ms) goes with it before its
// 300 ms of work is done. (The Go original ends with a sleep; here main waits on `outcome`.)
void context_cancellation() {
    auto [parent_ctx, parent_cancel] = goro::with_cancel(goro::background());
    auto [child_ctx, child_cancel] = goro::with_timeout(parent_ctx, 500ms);

    goro::Channel<std::error_code> outcome(1);
    goro::go([child_ctx = child_ctx, outcome] {  // clang < 16 cannot capture a binding
        goro::select(goro::recv(goro::after(300ms), [] {
                         std::printf("Work completed normally\n");
                     }),
                     goro::recv(child_ctx.done(), [&] {
                         std::printf("Child context cancelled: %s\n",
                                     child_ctx.err().message().c_str());
                     }));
        outcome.send(child_ctx.err());
    });

    goro::sleep_for(100ms);
    parent_cancel();

    std::error_code err = *outcome.recv();
    expect(err == goro::errc::canceled, "the child should be cancelled with its parent");
    child_cancel();
}

}  // namespace

int main() {
    std::printf("-- WithTimeout(400ms), 5 x 50 ms of work --\n");
    context_example(400ms, true);
    std::printf("-- WithTimeout(120ms), 5 x 50 ms of work --\n");
    context_example(120ms, false);
    std::printf("-- WithValue --\n");
    context_with_values();
    std::printf("-- cancelling the parent cancels the child --\n");
    context_cancellation();
    std::printf("context_cancel: %s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
