// chat_hub: the chat hub of the tutorials (gorilla/websocket's chat example), in goro.
//
// The Go original, in outline:
//
//     type Hub struct {
//         clients    map[*Client]bool
//         broadcast  chan []byte
//         register   chan *Client
//         unregister chan *Client
//     }
//     func (h *Hub) run() {
//         for {
//             select {
//             case client := <-h.register:
//                 h.clients[client] = true
//             case client := <-h.unregister:
//                 if _, ok := h.clients[client]; ok {
//                     delete(h.clients, client)
//                     close(client.send)
//                 }
//             case message := <-h.broadcast:
//                 for client := range h.clients {
//                     select {
//                     case client.send <- message:
//                     default:
//                         close(client.send)
//                         delete(h.clients, client)
//                     }
//                 }
//             }
//         }
//     }
//     type Client struct { hub *Hub; conn *websocket.Conn; send chan []byte }
//     func (c *Client) readPump() {
//         defer func() { c.hub.unregister <- c; c.conn.Close() }()
//         for {
//             _, message, err := c.conn.ReadMessage()
//             if err != nil { break }
//             c.hub.broadcast <- message
//         }
//     }
//     func (c *Client) writePump() {
//         for {
//             select {
//             case message, ok := <-c.send: if !ok { ...close; return }; write message
//             case <-ticker.C:              write a ping
//             }
//         }
//     }
//     func serveWs(hub *Hub, ...) {
//         client := &Client{hub: hub, conn: conn, send: make(chan []byte, 256)}
//         client.hub.register <- client
//         go client.writePump()
//         go client.readPump()
//     }
//     func main() { hub := newHub(); go hub.run(); ... }
//
// goro has no network layer yet, so a connection is simulated in process (Conn below: one
// channel per direction) and the browsers are goroutines too. N users (argv[1], default 5) each
// join, post M lines (argv[2], default 4) with small pauses, read every line through their
// client's send channel, and leave. One more browser stalls, like a frozen tab: its client's send
// buffer fills and the hub drops it, as the Go hub drops slow clients.
//
// At the end the program checks that the hub saw every line once, in each sender's order, and
// that every client got exactly the hub's history, or a prefix of it if the hub dropped it; it
// exits 1 otherwise.

#include <goro/goro.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

using namespace std::chrono_literals;

namespace {

// The Go example buffers 256 messages per client; 16 lets the stalled browser overflow it.
constexpr std::size_t send_buffer = 16;
constexpr auto ping_period = 50ms;  // Go's is 54s: (pongWait * 9) / 10
const std::string ping = "\x01ping";

// Conn stands in for *websocket.Conn until goro/net.hpp exists: the browser's frames go up, the
// server's come down, and a closed channel is a closed socket.
struct Conn {
    goro::Channel<std::string> up;    // browser -> server; the browser closes it to disconnect
    goro::Channel<std::string> down;  // server -> browser; the server closes it to hang up
    goro::Once close_once;

    // read_message() is the server reading a frame; nullopt once the browser has gone.
    std::optional<std::string> read_message() { return up.recv(); }
    // write_message() is the server writing a frame; false once the connection is closed.
    bool write_message(std::string message) {
        try {
            down.send(std::move(message));
            return true;
        } catch (const goro::ChannelClosed&) {
            return false;
        }
    }
    // close() may be called by both pumps, as conn.Close() is in Go.
    void close() {
        close_once.call([this] { down.close(); });
    }
};

struct Client;
using ClientPtr = std::shared_ptr<Client>;

// Hub maintains the set of active clients and broadcasts messages to them.
struct Hub {
    std::unordered_set<ClientPtr> clients;  // registered clients; only run() touches it
    goro::Channel<std::string> broadcast;   // inbound messages from the clients
    goro::Channel<ClientPtr> register_;     // `register` is a C++ keyword
    goro::Channel<ClientPtr> unregister;

    // Not in the Go original: what the hub did, for the checks at the end.
    goro::Mutex mu;
    std::vector<std::string> history;  // every message broadcast, in order
    std::vector<std::string> dropped;  // names of the clients dropped for being slow

    void run();
};

// Client is a middleman between the connection and the hub.
struct Client : std::enable_shared_from_this<Client> {
    Client(Hub* h, std::shared_ptr<Conn> c, std::string n)
        : hub(h), conn(std::move(c)), send(send_buffer), name(std::move(n)) {}

    Hub* hub;
    std::shared_ptr<Conn> conn;
    goro::Channel<std::string> send;  // buffered channel of outbound messages
    std::string name;

    void read_pump();
    void write_pump();
};

void Hub::run() {
    for (;;) {
        goro::select(
            goro::recv(register_, [&](const std::optional<ClientPtr>& client) {
                clients.insert(*client);
                std::printf("+ %s joined (%zu online)\n", (*client)->name.c_str(),
                            clients.size());
            }),
            goro::recv(unregister, [&](const std::optional<ClientPtr>& client) {
                if (clients.erase(*client)) {
                    (*client)->send.close();
                    std::printf("- %s left (%zu online)\n", (*client)->name.c_str(),
                                clients.size());
                }
            }),
            goro::recv(broadcast, [&](std::optional<std::string> message) {
                {
                    std::lock_guard<goro::Mutex> lock(mu);
                    history.push_back(*message);
                }
                std::printf("  %s\n", message->c_str());
                for (auto it = clients.begin(); it != clients.end();) {
                    ClientPtr client = *it;
                    goro::select(goro::send(client->send, *message, [&] { ++it; }),
                                 goro::default_case([&] {
                                     client->send.close();
                                     it = clients.erase(it);
                                     std::printf("! hub dropped %s: its send buffer is full\n",
                                                 client->name.c_str());
                                     std::lock_guard<goro::Mutex> lock(mu);
                                     dropped.push_back(client->name);
                                 }));
                }
            }));
    }
}

// read_pump() pumps messages from the connection to the hub.
void Client::read_pump() {
    for (;;) {
        std::optional<std::string> message = conn->read_message();
        if (!message) break;
        hub->broadcast.send(std::move(*message));
    }
    // Go defers these two.
    hub->unregister.send(shared_from_this());
    conn->close();
}

// write_pump() pumps messages from the hub to the connection, and pings it now and then.
void Client::write_pump() {
    goro::Ticker ticker(ping_period);  // its destructor is Go's deferred ticker.Stop()
    bool open = true;
    while (open) {
        goro::select(
            goro::recv(send, [&](std::optional<std::string> message) {
                if (!message) {  // the hub closed the channel
                    open = false;
                    return;
                }
                open = conn->write_message(std::move(*message));
            }),
            goro::recv(ticker.c(), [&] { open = conn->write_message(ping); }));
    }
    conn->close();
}

// serve_ws() is Go's serveWs without the HTTP upgrade: the connection arrives open.
void serve_ws(Hub* hub, std::shared_ptr<Conn> conn, std::string name) {
    auto client = std::make_shared<Client>(hub, std::move(conn), std::move(name));
    client->hub->register_.send(client);
    goro::go(&Client::write_pump, client);
    goro::go(&Client::read_pump, client);
}

// ---- the simulated browsers ----

struct Report {
    std::string name;
    std::vector<std::string> received;  // chat lines, pings left out
    bool stalled = false;
};

struct Room {
    Hub* hub;
    int users;
    int posts;
    goro::WaitGroup joined;                // everyone is in before anyone speaks
    goro::Channel<std::monostate> over;    // closed once every prompt user has read everything
    goro::WaitGroup prompt_done;
    goro::WaitGroup all_done;
    std::vector<Report> reports;           // one slot per browser, written by it alone

    std::size_t total() const { return static_cast<std::size_t>(users) * posts; }
};

const char* const phrases[] = {"hi everyone", "how's it going?", "goroutines in C++, who knew",
                               "channels all the way down", "gotta go, bye"};

std::string line(const std::string& name, int k) {
    return name + ": " + phrases[(k - 1) % std::size(phrases)] + " [" + std::to_string(k) + "]";
}

std::string user_name(int i) {
    static const char* const names[] = {"alice", "bob", "carol", "dave", "erin",
                                        "frank", "grace", "heidi", "ivan", "judy"};
    if (i < static_cast<int>(std::size(names))) return names[i];
    return "user" + std::to_string(i);
}

// reader() is the browser's reading side: it collects chat lines until it has `want` of them or
// the server hangs up, and hands them over on `inbox`.
void reader(std::shared_ptr<Conn> conn, std::size_t want,
            goro::SendChannel<std::vector<std::string>> inbox) {
    std::vector<std::string> got;
    while (got.size() < want) {
        std::optional<std::string> frame = conn->down.recv();
        if (!frame) break;
        if (*frame != ping) got.push_back(std::move(*frame));
    }
    inbox.send(std::move(got));
}

// user() is a browser: connect, wait for the room, post, read everything, disconnect.
void user(Room* room, int id) {
    Report& report = room->reports[id];
    report.name = user_name(id);
    auto conn = std::make_shared<Conn>();
    serve_ws(room->hub, conn, report.name);
    room->joined.done();
    room->joined.wait();

    goro::Channel<std::vector<std::string>> inbox(1);
    goro::go(reader, conn, room->total(), inbox);
    for (int k = 1; k <= room->posts; ++k) {
        goro::sleep_for(std::chrono::milliseconds(5 + (id * 7 + k * 11) % 20));
        conn->up.send(line(report.name, k));
    }
    report.received = *inbox.recv();
    conn->up.close();  // disconnect: read_pump sees the end and unregisters
    room->prompt_done.done();
    room->all_done.done();
}

// stalled_user() is a frozen tab: it connects and reads nothing until the chat is over.
void stalled_user(Room* room, int id) {
    Report& report = room->reports[id];
    report.name = "lurker";
    report.stalled = true;
    auto conn = std::make_shared<Conn>();
    serve_ws(room->hub, conn, report.name);
    room->joined.done();
    room->joined.wait();

    room->over.recv();
    goro::Channel<std::vector<std::string>> inbox(1);
    goro::go(reader, conn, room->total(), inbox);
    report.received = *inbox.recv();
    conn->up.close();
    room->all_done.done();
}

bool is_prefix(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

int main(int argc, char** argv) {
    int users = argc > 1 ? std::atoi(argv[1]) : 5;
    int posts = argc > 2 ? std::atoi(argv[2]) : 4;
    if (users < 1 || posts < 1) {
        std::fprintf(stderr, "usage: %s [users >= 1] [posts per user >= 1]\n", argv[0]);
        return 2;
    }
    auto start = goro::Clock::now();

    // hub := newHub(); go hub.run(). Like Go's, the hub lives for the rest of the process.
    Hub* hub = new Hub;
    goro::go([hub] { hub->run(); });

    Room room{hub, users, posts};
    room.reports.resize(users + 1);
    room.joined.add(users + 1);
    room.prompt_done.add(users);
    room.all_done.add(users + 1);
    for (int i = 0; i < users; ++i) goro::go(user, &room, i);
    goro::go(stalled_user, &room, users);

    room.prompt_done.wait();
    room.over.close();
    room.all_done.wait();
    auto elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(goro::Clock::now() - start);

    // ---- checks ----
    std::vector<std::string> history, dropped;
    {
        std::lock_guard<goro::Mutex> lock(hub->mu);
        history = hub->history;
        dropped = hub->dropped;
    }
    bool ok = true;
    auto fail = [&](const std::string& why) {
        std::printf("FAIL: %s\n", why.c_str());
        ok = false;
    };

    // The hub saw every line exactly once, and each sender's lines in the order they were sent.
    std::vector<std::string> expected;
    for (int i = 0; i < users; ++i)
        for (int k = 1; k <= posts; ++k) expected.push_back(line(user_name(i), k));
    std::vector<std::string> seen = history;
    std::sort(expected.begin(), expected.end());
    std::sort(seen.begin(), seen.end());
    if (seen != expected)
        fail("the hub broadcast " + std::to_string(history.size()) + " lines, expected " +
             std::to_string(expected.size()) + " distinct ones");
    for (int i = 0; i < users; ++i) {
        int next = 1;
        for (const std::string& h : history)
            if (next <= posts && h == line(user_name(i), next)) ++next;
        if (next != posts + 1) fail(user_name(i) + "'s lines reached the hub out of order");
    }

    // Each client got the whole history, or a prefix of it if the hub dropped it.
    std::size_t deliveries = 0;
    for (const Report& r : room.reports) {
        bool was_dropped = std::find(dropped.begin(), dropped.end(), r.name) != dropped.end();
        deliveries += r.received.size();
        std::printf("%-8s received %zu/%zu lines%s\n", r.name.c_str(), r.received.size(),
                    history.size(),
                    was_dropped ? " (dropped by the hub as too slow)"
                                : r.received == history ? ", in the hub's order" : "");
        if (was_dropped ? !is_prefix(r.received, history) : r.received != history)
            fail(r.name + " lost or reordered lines");
    }
    // The stalled client must overflow its buffer exactly when the history outgrows it.
    bool lurker_dropped = std::find(dropped.begin(), dropped.end(), "lurker") != dropped.end();
    if (history.size() > send_buffer + 1 && !lurker_dropped)
        fail("the stalled client should have been dropped");
    if (history.size() <= send_buffer && lurker_dropped)
        fail("the stalled client was dropped although its buffer had room");

    std::printf("chat_hub: %d users + 1 stalled, %zu lines broadcast, %zu delivered, "
                "%zu slow client(s) dropped, %lld ms: %s\n",
                users, history.size(), deliveries, dropped.size(),
                static_cast<long long>(elapsed.count()), ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
