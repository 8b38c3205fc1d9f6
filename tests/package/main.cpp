// A program that only uses goro the way a downstream project would.
#include <goro/goro.hpp>

int main() {
    goro::Channel<int> ch;
    goro::go([ch] {
        for (int i = 1; i <= 10; ++i) ch.send(i);
        ch.close();
    });
    int sum = 0;
    for (int v : ch) sum += v;
    return sum == 55 ? 0 : 1;
}
