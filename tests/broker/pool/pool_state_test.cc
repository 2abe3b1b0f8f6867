// PoolState on its own: no sockets, no threads, no clock. Time is a number the test moves, and
// every effect is an action the test reads.

#include "broker/pool/pool_state.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tlsbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Actions = PoolState::Actions;
using SlotState = PoolState::SlotState;

const absl::Time kStart = absl::FromUnixSeconds(1'000'000);

PoolOptions Options(int max_sockets) {
  PoolOptions o;
  o.max_sockets = max_sockets;
  o.min_idle = 0;
  o.max_waiters = 100;
  o.backoff_initial = absl::Milliseconds(100);
  o.backoff_max = absl::Milliseconds(400);
  o.idle_timeout = absl::Minutes(5);
  o.max_lifetime = absl::Hours(1);
  return o;
}

std::vector<uint64_t> Tickets(const std::vector<PoolState::Grant>& grants) {
  std::vector<uint64_t> out;
  for (const auto& g : grants) out.push_back(g.waiter.ticket);
  return out;
}

// Drives one PoolState the way SocketPool does, with a clock of its own.
class PoolStateTest : public ::testing::Test {
 protected:
  void Make(const PoolOptions& options, SocketBudget* budget = nullptr) {
    state_ = std::make_unique<PoolState>("b1", options, budget, /*seed=*/7);
  }
  PoolState& state() { return *state_; }

  uint64_t Acquire(int slot = 0, absl::Duration timeout = absl::InfiniteDuration()) {
    return state_->Acquire(slot, timeout == absl::InfiniteDuration() ? absl::InfiniteFuture()
                                                                      : now_ + timeout,
                           now_, &a_);
  }
  // The connect the state asked for succeeds: returns the new socket's id.
  uint64_t Connected(int slot, absl::Time retire_at = absl::InfiniteFuture()) {
    const uint64_t id = next_socket_++;
    EXPECT_TRUE(state_->OnConnected(slot, id, now_, retire_at, false, &a_));
    return id;
  }
  // A lease on `grant` begins and ends; `clean` says how.
  PoolState::ReturnResult Release(const PoolState::Grant& grant, bool clean = true) {
    state_->OnLeaseStarted(grant.slot, grant.socket);
    state_->NoteReturning(grant.slot, grant.socket);
    return state_->OnReturned(grant.slot, grant.socket, clean, clean ? "" : "dirty", now_, &a_);
  }
  // The actions so far, and a fresh list for what follows.
  Actions Take() {
    EXPECT_EQ(state_->CheckInvariants(), "");
    Actions out = std::move(a_);
    a_ = Actions();
    return out;
  }
  // Serves one caller from a new socket in `slot` (which the state must ask to connect).
  PoolState::Grant Lend(int slot = 0) {
    const uint64_t ticket = Acquire(slot);
    Actions a = Take();
    EXPECT_EQ(a.connects.size(), 1u);
    if (a.connects.empty()) return {};
    Connected(a.connects[0]);
    a = Take();
    EXPECT_EQ(a.grants.size(), 1u);
    if (a.grants.empty()) return {};
    EXPECT_EQ(a.grants[0].waiter.ticket, ticket);
    return a.grants[0];
  }

  std::unique_ptr<SocketBudget> budget_;  // Outlives state_, which gives its tokens back.
  std::unique_ptr<PoolState> state_;
  Actions a_;
  absl::Time now_ = kStart;
  uint64_t next_socket_ = 100;
};

// A slot keeps its number (and so its client ID) when its socket is replaced: the caller who
// asks for slot 3 after its socket was destroyed gets a new socket in slot 3.
TEST_F(PoolStateTest, SlotKeepsItsNumberWhenItsSocketIsReplaced) {
  Make(Options(4));
  PoolState::Grant first = Lend(3);
  EXPECT_EQ(first.slot, 3);
  EXPECT_FALSE(Release(first, /*clean=*/false).keep);
  EXPECT_EQ(state().slot(3).state, SlotState::kEmpty);
  Take();
  PoolState::Grant second = Lend(3);
  EXPECT_EQ(second.slot, 3);
  EXPECT_NE(second.socket, first.socket);
}

// A caller who asks for any socket gets the lowest free slot, so low client IDs are the busy
// ones and the high ones stay free for callers who name them.
TEST_F(PoolStateTest, AnyCallerGetsTheLowestFreeSlot) {
  Make(Options(4));
  Acquire();
  EXPECT_THAT(Take().connects, ElementsAre(1));
  Acquire();
  EXPECT_THAT(Take().connects, ElementsAre(2));
}

// A socket is in exactly one of idle or leased: lending takes it out of the idle list, and a
// clean return puts it back once.
TEST_F(PoolStateTest, ASocketIsNeverIdleAndLeasedAtOnce) {
  Make(Options(2));
  PoolState::Grant g = Lend();
  EXPECT_EQ(state().slot(g.slot).state, SlotState::kLeased);
  EXPECT_THAT(state().idle_slots(), IsEmpty());
  EXPECT_TRUE(Release(g).keep);
  EXPECT_THAT(state().idle_slots(), ElementsAre(g.slot));
  EXPECT_EQ(state().leased(), 0);
  Take();
}

// Idle sockets are lent most recently used first, so a surplus ages out at idle_timeout.
TEST_F(PoolStateTest, IdleSocketsAreLentMostRecentlyUsedFirst) {
  Make(Options(2));
  PoolState::Grant a = Lend();
  PoolState::Grant b = Lend();
  Release(a);
  Release(b);
  Take();
  Acquire();
  Actions next = Take();
  ASSERT_EQ(next.grants.size(), 1u);
  EXPECT_EQ(next.grants[0].socket, b.socket);
}

// Callers waiting for any socket are served in the order they came.
TEST_F(PoolStateTest, WaitersAreServedInFifoOrder) {
  Make(Options(1));
  PoolState::Grant held = Lend();
  std::vector<uint64_t> queued;
  for (int i = 0; i < 4; ++i) queued.push_back(Acquire());
  EXPECT_THAT(Take().grants, IsEmpty());
  std::vector<uint64_t> served;
  PoolState::Grant g = held;
  for (int i = 0; i < 4; ++i) {
    Release(g);
    Actions a = Take();
    ASSERT_EQ(a.grants.size(), 1u);
    served.push_back(a.grants[0].waiter.ticket);
    g = a.grants[0];
  }
  EXPECT_EQ(served, queued);
}

// A caller who named a client ID waits for that slot; callers behind it who take any socket
// are served from other slots meanwhile.
TEST_F(PoolStateTest, WaiterForASpecificSlotWaitsForItWhileOthersAreServed) {
  Make(Options(2));
  PoolState::Grant one = Lend(1);
  PoolState::Grant two = Lend(2);
  const uint64_t wants_one = Acquire(1);
  const uint64_t any = Acquire();
  EXPECT_THAT(Take().grants, IsEmpty());
  Release(two);
  Actions a = Take();
  EXPECT_THAT(Tickets(a.grants), ElementsAre(any));
  EXPECT_EQ(a.grants[0].slot, 2);
  Release(one);
  a = Take();
  EXPECT_THAT(Tickets(a.grants), ElementsAre(wants_one));
  EXPECT_EQ(a.grants[0].slot, 1);
}

// A waiter still queued when its deadline passes fails DEADLINE_EXCEEDED, with the last connect
// failure in the message; the timer is aimed at the earliest deadline and moves on to the next.
TEST_F(PoolStateTest, WaiterPastItsDeadlineFailsWithDeadlineExceeded) {
  Make(Options(1));
  Lend();
  const uint64_t early = Acquire(0, absl::Milliseconds(100));
  const uint64_t late = Acquire(0, absl::Milliseconds(300));
  Actions a = Take();
  ASSERT_TRUE(a.deadline_timer.has_value());
  EXPECT_EQ(*a.deadline_timer, kStart + absl::Milliseconds(100));
  // A timer that fires early (another clock) fails nobody and is aimed again.
  now_ = kStart + absl::Milliseconds(99);
  state().OnDeadlineTimer(now_, &a_);
  a = Take();
  EXPECT_THAT(a.failures, IsEmpty());
  EXPECT_EQ(a.deadline_timer, kStart + absl::Milliseconds(100));
  now_ = kStart + absl::Milliseconds(100);
  state().OnDeadlineTimer(now_, &a_);
  a = Take();
  ASSERT_EQ(a.failures.size(), 1u);
  EXPECT_EQ(a.failures[0].waiter.ticket, early);
  EXPECT_EQ(a.failures[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(a.failures[0].status.message()), HasSubstr("backend b1"));
  EXPECT_EQ(a.deadline_timer, kStart + absl::Milliseconds(300));
  EXPECT_EQ(state().Waiters().size(), 1u);
  EXPECT_EQ(state().Waiters()[0].ticket, late);
}

// A cancelled waiter fails CANCELLED and leaves the queue; the deadline timer is not moved
// later (that would cost a trip to the timer's thread per waiter): it fires, fails nobody and
// stays unarmed. Cancelling again, or a ticket already served, changes nothing.
TEST_F(PoolStateTest, CancelledWaiterFailsWithCancelledAndLeavesTheQueue) {
  Make(Options(1));
  Lend();
  const uint64_t ticket = Acquire(0, absl::Seconds(1));
  Take();
  state().Cancel(ticket, &a_);
  Actions a = Take();
  ASSERT_EQ(a.failures.size(), 1u);
  EXPECT_EQ(a.failures[0].status.code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(a.deadline_timer.has_value());
  EXPECT_EQ(state().waiters(), 0);
  state().Cancel(ticket, &a_);
  EXPECT_TRUE(Take().empty());
  now_ = state().deadline_timer_at();
  state().OnDeadlineTimer(now_, &a_);
  a = Take();
  EXPECT_THAT(a.failures, IsEmpty());
  EXPECT_FALSE(a.deadline_timer.has_value());
  EXPECT_EQ(state().deadline_timer_at(), absl::InfiniteFuture());
}

// Beyond max_waiters a caller who would have to wait is refused at once; one served at once
// does not count against the limit.
TEST_F(PoolStateTest, MaxWaitersRefusesTheExcessWithResourceExhausted) {
  PoolOptions o = Options(1);
  o.max_waiters = 2;
  Make(o);
  Lend();
  Acquire();
  Acquire();
  const uint64_t third = Acquire();
  Actions a = Take();
  ASSERT_EQ(a.failures.size(), 1u);
  EXPECT_EQ(a.failures[0].waiter.ticket, third);
  EXPECT_EQ(a.failures[0].status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(a.failures[0].status.message()), HasSubstr("max_waiters 2"));
  EXPECT_EQ(state().waiters(), 2);
}

// The broker-wide budget is shared: a pool never holds more tokens than slots in use, a caller
// no socket can serve is refused RESOURCE_EXHAUSTED once it is used up, and a slot that empties
// gives its token back at once.
TEST_F(PoolStateTest, BudgetIsNeverExceededAndTokensReturnWhenSlotsEmpty) {
  budget_ = std::make_unique<SocketBudget>(2, nullptr);
  SocketBudget& budget = *budget_;
  PoolState other("b2", Options(4), &budget, 1);
  Actions other_actions;
  other.Acquire(0, absl::InfiniteFuture(), now_, &other_actions);  // One token elsewhere.
  ASSERT_EQ(other_actions.connects.size(), 1u);
  Make(Options(4), &budget);
  PoolState::Grant g = Lend();
  EXPECT_EQ(budget.used(), 2);
  EXPECT_EQ(state().budget_held(), 1);
  Acquire();
  Actions a = Take();
  ASSERT_EQ(a.failures.size(), 1u);
  EXPECT_EQ(a.failures[0].status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(a.failures[0].status.message()), HasSubstr("socket budget exhausted"));
  EXPECT_THAT(a.connects, IsEmpty());
  EXPECT_EQ(budget.used(), 2);
  Release(g, /*clean=*/false);
  EXPECT_EQ(state().budget_held(), 0);
  EXPECT_EQ(budget.used(), 1);
  Take();
  // The pool gives what it still holds back when it goes.
  other.OnConnected(1, 9, now_, absl::InfiniteFuture(), false, &other_actions);
  state_.reset();
  EXPECT_EQ(budget.used(), 1);
}

// A caller waiting beside a socket already connecting is covered by it and waits; only the
// callers beyond what is coming are refused for the budget.
TEST_F(PoolStateTest, BudgetRefusesOnlyCallersNoComingSocketCovers) {
  budget_ = std::make_unique<SocketBudget>(1, nullptr);
  Make(Options(4), budget_.get());
  const uint64_t first = Acquire();
  EXPECT_THAT(Take().connects, ElementsAre(1));
  const uint64_t second = Acquire();
  Actions a = Take();
  ASSERT_EQ(a.failures.size(), 1u);
  EXPECT_EQ(a.failures[0].waiter.ticket, second);
  Connected(1);
  EXPECT_THAT(Tickets(Take().grants), ElementsAre(first));
}

// After a connect failure the pool backs off (exponentially, jittered in [d/2, d], capped at
// backoff_max): waiters fail at once with the failure's reason instead of at their deadline,
// the retry timer is aimed at the end of the backoff, and a success ends it.
TEST_F(PoolStateTest, ConnectFailuresBackOffAndFailWaitersWithTheReason) {
  Make(Options(2));
  const absl::Status refused = absl::UnavailableError("connect_refused: nobody home");
  const absl::Duration caps[] = {absl::Milliseconds(100), absl::Milliseconds(200),
                                 absl::Milliseconds(400), absl::Milliseconds(400)};
  for (absl::Duration cap : caps) {
    const uint64_t ticket = Acquire(0, absl::Seconds(30));
    Actions a = Take();
    ASSERT_EQ(a.connects.size(), 1u);
    state().OnConnectFailed(a.connects[0], refused, now_, &a_);
    a = Take();
    ASSERT_EQ(a.failures.size(), 1u);
    EXPECT_EQ(a.failures[0].waiter.ticket, ticket);
    EXPECT_EQ(a.failures[0].status, refused);
    EXPECT_GE(state().backoff_until(), now_ + cap / 2);
    EXPECT_LE(state().backoff_until(), now_ + cap);
    EXPECT_EQ(a.retry_timer, state().backoff_until());
    // While backing off nothing connects, and a new caller fails at once.
    Acquire();
    a = Take();
    EXPECT_THAT(a.connects, IsEmpty());
    ASSERT_EQ(a.failures.size(), 1u);
    EXPECT_EQ(a.failures[0].status, refused);
    now_ = state().retry_timer_at();
    state().OnRetryTimer(now_, &a_);
    Take();
  }
  EXPECT_EQ(state().connect_failures(), 4u);
  Lend();
  EXPECT_EQ(state().consecutive_failures(), 0);
  EXPECT_EQ(state().backoff_until(), absl::InfinitePast());
  EXPECT_TRUE(state().last_failure().ok());
}

// A caller who named a leased slot keeps waiting through a backoff: that socket comes back
// whatever the backend does.
TEST_F(PoolStateTest, WaiterForALeasedSlotOutlastsTheBackoff) {
  Make(Options(2));
  PoolState::Grant one = Lend(1);
  Acquire(2);
  Actions a = Take();
  ASSERT_THAT(a.connects, ElementsAre(2));
  const uint64_t wants_one = Acquire(1);
  state().OnConnectFailed(2, absl::UnavailableError("refused"), now_, &a_);
  a = Take();
  ASSERT_EQ(a.failures.size(), 1u);
  EXPECT_NE(a.failures[0].waiter.ticket, wants_one);
  Release(one);
  EXPECT_THAT(Tickets(Take().grants), ElementsAre(wants_one));
}

// Shutdown fails the waiters, closes the idle sockets ("drain") and refuses new callers; a
// leased socket closes when its lease ends. Resume lends again and prewarms to min_idle.
TEST_F(PoolStateTest, ShutdownFailsWaitersClosesIdleAndResumeLendsAgain) {
  PoolOptions o = Options(3);
  o.min_idle = 1;
  Make(o);
  PoolState::Grant leased = Lend();
  PoolState::Grant idle = Lend();
  Release(idle);
  state().Start(now_, &a_);
  EXPECT_THAT(Take().connects, IsEmpty());  // min_idle is met by the idle socket.
  const uint64_t queued = Acquire(leased.slot);  // Waits for the leased slot.
  Take();
  state().Shutdown(now_, &a_);
  Actions a = Take();
  ASSERT_EQ(a.failures.size(), 1u);
  EXPECT_EQ(a.failures[0].waiter.ticket, queued);
  EXPECT_EQ(a.failures[0].status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(a.failures[0].status.message()), HasSubstr("draining"));
  ASSERT_EQ(a.closes.size(), 1u);
  EXPECT_EQ(a.closes[0].socket, idle.socket);
  EXPECT_EQ(a.closes[0].reason, "drain");
  EXPECT_EQ(state().idle(), 0);
  Acquire();
  a = Take();
  ASSERT_EQ(a.failures.size(), 1u);
  EXPECT_EQ(a.failures[0].status.code(), absl::StatusCode::kUnavailable);
  PoolState::ReturnResult r = Release(leased);
  EXPECT_FALSE(r.keep);
  EXPECT_EQ(r.reason, "drain");
  Take();
  EXPECT_TRUE(state().Resume(now_, &a_));
  EXPECT_THAT(Take().connects, ElementsAre(1));  // Prewarm.
  EXPECT_FALSE(state().Resume(now_, &a_));
}

// A socket whose lease just ended (its clean check still to run) counts as supply: a caller
// arriving meanwhile waits for it instead of making the pool open another socket.
TEST_F(PoolStateTest, ReturningSocketIsSupplyForTheNextCaller) {
  Make(Options(2));
  PoolState::Grant g = Lend();
  state().OnLeaseStarted(g.slot, g.socket);
  state().NoteReturning(g.slot, g.socket);
  const uint64_t next = Acquire();
  EXPECT_THAT(Take().connects, IsEmpty());
  state().OnReturned(g.slot, g.socket, true, "", now_, &a_);
  Actions a = Take();
  EXPECT_THAT(Tickets(a.grants), ElementsAre(next));
  EXPECT_EQ(a.grants[0].socket, g.socket);
}

// The same in a started pool (min_idle 0): the prewarm must count the returning socket too, or
// it opens a second one that may win the race and serve the caller on a new socket (seen as a
// Lease stream's socket not reused by the next Call).
TEST_F(PoolStateTest, StartedPoolDoesNotPrewarmPastAReturningSocket) {
  Make(Options(2));
  state().Start(now_, &a_);
  Take();
  PoolState::Grant g = Lend();
  state().OnLeaseStarted(g.slot, g.socket);
  state().NoteReturning(g.slot, g.socket);
  const uint64_t next = Acquire();
  EXPECT_THAT(Take().connects, IsEmpty());
  state().OnReturned(g.slot, g.socket, true, "", now_, &a_);
  Actions a = Take();
  EXPECT_THAT(Tickets(a.grants), ElementsAre(next));
  EXPECT_THAT(a.connects, IsEmpty());
}

// Without the returning mark the same caller makes the pool open a second socket.
TEST_F(PoolStateTest, LeasedSocketNotReturningIsNoSupply) {
  Make(Options(2));
  Lend();
  Acquire();
  EXPECT_THAT(Take().connects, ElementsAre(2));
}

// A socket returned clean still closes when the pool's rules retire it, with that reason.
TEST_F(PoolStateTest, ReturnedSocketClosesWithTheReasonThatRetiresIt) {
  PoolOptions o = Options(1);
  o.max_leases_per_socket = 2;
  Make(o);
  PoolState::Grant g = Lend();
  EXPECT_TRUE(Release(g).keep);
  Acquire();
  g = Take().grants.at(0);
  PoolState::ReturnResult r = Release(g);
  EXPECT_FALSE(r.keep);
  EXPECT_EQ(r.reason, "max_leases");
  Take();

  g = Lend();
  state().OnLeaseStarted(g.slot, g.socket);
  EXPECT_EQ(state().Retire(g.slot, g.socket, "revoked", &a_),
            PoolState::RetireResult::kLeasedRetired);
  r = state().OnReturned(g.slot, g.socket, true, "", now_, &a_);
  EXPECT_FALSE(r.keep);
  EXPECT_EQ(r.reason, "revoked");
  Take();

  g = Lend();
  now_ += o.max_lifetime;
  r = Release(g);
  EXPECT_EQ(r.reason, "lifetime");
}

// The sweep closes idle sockets past idle_timeout, least recently used first, but keeps
// min_idle of them; a socket past its certificate's retire time closes whatever min_idle says.
TEST_F(PoolStateTest, SweepRetiresIdleSocketsDownToMinIdle) {
  PoolOptions o = Options(3);
  o.min_idle = 1;
  o.idle_timeout = absl::Seconds(10);
  Make(o);
  PoolState::Grant a = Lend();
  PoolState::Grant b = Lend();
  Release(a);
  now_ += absl::Seconds(1);
  Release(b);
  Take();
  now_ += absl::Seconds(10);
  state().Sweep(now_, &a_);
  Actions swept = Take();
  ASSERT_EQ(swept.closes.size(), 1u);
  EXPECT_EQ(swept.closes[0].socket, a.socket);
  EXPECT_EQ(swept.closes[0].reason, "idle");
  EXPECT_THAT(state().idle_slots(), ElementsAre(b.slot));

  // A socket whose backend certificate is about to expire: closed by the next sweep although
  // it is then the only idle socket besides min_idle.
  Acquire(3);
  Actions a_conn = Take();
  ASSERT_EQ(a_conn.connects.size(), 1u);
  const uint64_t expiring = Connected(a_conn.connects[0], now_ + absl::Seconds(1));
  PoolState::Grant c = Take().grants.at(0);
  Release(c);
  Take();
  now_ += absl::Seconds(1);
  state().Sweep(now_, &a_);
  swept = Take();
  ASSERT_EQ(swept.closes.size(), 2u);
  EXPECT_EQ(swept.closes[0].socket, b.socket);
  EXPECT_EQ(swept.closes[0].reason, "idle");
  EXPECT_EQ(swept.closes[1].socket, expiring);
  EXPECT_EQ(swept.closes[1].reason, "expired");
  EXPECT_EQ(state().idle(), 0);
}

// A granted socket found unusable when its lease was to begin sends its caller back to the
// front of the queue, ahead of those who came later.
TEST_F(PoolStateTest, GrantFoundUnusablePutsTheCallerBackFirstInLine) {
  Make(Options(1));
  PoolState::Grant held = Lend();
  const uint64_t first = Acquire();
  const uint64_t second = Acquire();
  Take();
  Release(held);
  Actions a = Take();
  ASSERT_THAT(Tickets(a.grants), ElementsAre(first));
  state().OnGrantFailed(a.grants[0].waiter, a.grants[0].slot, a.grants[0].socket, now_, &a_);
  a = Take();
  EXPECT_THAT(a.connects, ElementsAre(1));
  Connected(1);
  EXPECT_THAT(Tickets(Take().grants), ElementsAre(first));
  EXPECT_EQ(state().Waiters().at(0).ticket, second);
}

// ---- The model test ----

// Random command sequences against two pools sharing one budget; after every step the state's
// own invariants hold, and so do the ones only an observer of the actions can check: every
// caller gets exactly one outcome, a grant is a socket the pool holds leased for that caller,
// callers for any socket are served in order, a connect is asked for only for a slot that was
// empty, a closed socket is never one that is lent, the budget is never exceeded.
class PoolModel {
 public:
  PoolModel(std::string name, const PoolOptions& options, SocketBudget* budget, uint64_t seed)
      : options_(options), state_(std::move(name), options, budget, seed) {}

  PoolState& state() { return state_; }

  // Applies `a` to the model; returns what is wrong, empty when nothing. Counts what happened
  // in `seen`.
  std::string Absorb(const Actions& a, std::map<std::string, int>* seen) {
    std::string bad;
    auto fail = [&bad](auto&&... parts) { absl::StrAppend(&bad, parts..., "; "); };
    for (const auto& f : a.failures) {
      if (open_tickets_.erase(f.waiter.ticket) == 0) fail("failure for unknown ticket");
      const absl::StatusCode code = f.status.code();
      ++(*seen)[absl::StrCat("failure:", absl::StatusCodeToString(code))];
      if (code != absl::StatusCode::kUnavailable && code != absl::StatusCode::kResourceExhausted &&
          code != absl::StatusCode::kDeadlineExceeded && code != absl::StatusCode::kCancelled) {
        fail("unexpected failure ", f.status.ToString());
      }
    }
    for (const auto& c : a.closes) {
      ++(*seen)[absl::StrCat("close:", c.reason)];
      if (lent_.count(c.socket) != 0) fail("closing socket ", c.socket, " that is lent");
      if (state_.slot(c.slot).socket == c.socket) fail("closed socket still in its slot");
    }
    for (int slot : a.connects) {
      if (!connecting_.insert(slot).second) fail("slot ", slot, " asked to connect twice");
    }
    std::set<int64_t> granted_any;
    for (const auto& g : a.grants) {
      if (open_tickets_.erase(g.waiter.ticket) == 0) fail("grant for unknown ticket");
      if (g.waiter.slot != 0 && g.waiter.slot != g.slot) fail("grant in the wrong slot");
      const PoolState::SlotInfo& s = state_.slot(g.slot);
      if (s.state != SlotState::kLeased || s.socket != g.socket) fail("grant not leased");
      if (!lent_.insert(g.socket).second) fail("socket ", g.socket, " lent twice");
      granted_.push_back(g);
      if (g.waiter.slot == 0) granted_any.insert(g.waiter.order);
      ++(*seen)[g.waiter.slot == 0 ? "grant:any" : "grant:slot"];
    }
    // FIFO: no caller for any socket still waits ahead of one just served.
    if (!granted_any.empty()) {
      for (const auto& w : state_.Waiters()) {
        if (w.slot == 0 && w.order < *granted_any.rbegin()) {
          fail("waiter ", w.ticket, " passed over by a later one");
        }
      }
    }
    std::set<int> state_connecting;
    for (int n = 1; n <= state_.max_sockets(); ++n) {
      if (state_.slot(n).state == SlotState::kConnecting) state_connecting.insert(n);
    }
    if (state_connecting != connecting_) fail("connecting slots differ from those asked for");
    // The leased sockets are exactly those lent and not yet back: none is idle meanwhile, and
    // none is leased that nobody holds.
    std::set<uint64_t> state_leased;
    for (int n = 1; n <= state_.max_sockets(); ++n) {
      if (state_.slot(n).state == SlotState::kLeased) state_leased.insert(state_.slot(n).socket);
    }
    if (state_leased != lent_) fail("leased sockets differ from those lent");
    // max_waiters bounds callers arriving; one put back after its grant failed was already
    // admitted and is not refused for it.
    int put_back = 0;
    for (const auto& w : state_.Waiters()) put_back += put_back_.count(w.ticket);
    if (state_.waiters() - put_back > options_.max_waiters) fail("more waiters than max_waiters");
    std::string inv = state_.CheckInvariants();
    if (!inv.empty()) fail(inv);
    return bad;
  }

  // One random command; returns its name, for the failure message.
  std::string Step(std::mt19937& rng, absl::Time* now, Actions* a) {
    auto pick = [&rng](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    *now += absl::Milliseconds(pick(30));
    switch (pick(14)) {
      case 0:
      case 1: {
        const int slot = pick(3) == 0 ? 1 + pick(options_.max_sockets) : 0;
        const absl::Time deadline =
            pick(4) == 0 ? absl::InfiniteFuture() : *now + absl::Milliseconds(1 + pick(300));
        const uint64_t ticket = state_.Acquire(slot, deadline, *now, a);
        open_tickets_.insert(ticket);
        // Outcomes for this ticket in `a` are matched in Absorb.
        return absl::StrCat("acquire slot ", slot);
      }
      case 2: {
        if (open_tickets_.empty()) return "cancel (none)";
        auto it = open_tickets_.begin();
        std::advance(it, pick(static_cast<int>(open_tickets_.size())));
        state_.Cancel(*it, a);
        return "cancel";
      }
      case 3:
      case 4: {
        if (connecting_.empty()) return "connect (none)";
        auto it = connecting_.begin();
        std::advance(it, pick(static_cast<int>(connecting_.size())));
        const int slot = *it;
        connecting_.erase(it);
        if (pick(3) == 0) {
          state_.OnConnectFailed(slot, absl::UnavailableError("connect_refused"), *now, a);
          return "connect failed";
        }
        const absl::Time retire_at =
            pick(5) == 0 ? *now + absl::Milliseconds(pick(500)) : absl::InfiniteFuture();
        state_.OnConnected(slot, next_socket_++, *now, retire_at, pick(2) == 0, a);
        return "connect ok";
      }
      case 5:
      case 6: {
        // A lease begins (or its socket is found unusable), or one ends.
        if (!granted_.empty()) {
          const PoolState::Grant g = granted_.front();
          granted_.erase(granted_.begin());
          if (pick(6) == 0) {
            lent_.erase(g.socket);
            open_tickets_.insert(g.waiter.ticket);
            put_back_.insert(g.waiter.ticket);
            state_.OnGrantFailed(g.waiter, g.slot, g.socket, *now, a);
            return "grant failed";
          }
          state_.RetireReasonAtLeaseStart(g.slot, g.socket, *now);
          state_.OnLeaseStarted(g.slot, g.socket);
          leases_.push_back(g);
          return "lease started";
        }
        return "lease start (none)";
      }
      case 7:
      case 8: {
        if (leases_.empty()) return "release (none)";
        const int i = pick(static_cast<int>(leases_.size()));
        const PoolState::Grant g = leases_[i];
        leases_.erase(leases_.begin() + i);
        const int how = pick(6);
        if (how == 0) {
          lent_.erase(g.socket);
          state_.Forget(g.slot, g.socket, *now, a);
          return "forget";
        }
        state_.NoteReturning(g.slot, g.socket);
        if (pick(2) == 0) {
          // The clean check runs later: the socket is on its way back (still leased) meanwhile.
          returning_.push_back({g, how != 1});
          return "returning";
        }
        lent_.erase(g.socket);
        state_.OnReturned(g.slot, g.socket, how != 1, "dirty", *now, a);
        return how != 1 ? "release clean" : "release dirty";
      }
      case 9: {
        if (returning_.empty()) return "returned (none)";
        const auto [g, clean] = returning_.front();
        returning_.erase(returning_.begin());
        lent_.erase(g.socket);
        state_.OnReturned(g.slot, g.socket, clean, "dirty", *now, a);
        return "returned";
      }
      case 10: {
        if (state_.deadline_timer_at() == absl::InfiniteFuture()) return "deadline (none)";
        *now = std::max(*now, state_.deadline_timer_at());
        state_.OnDeadlineTimer(*now, a);
        return "deadline fired";
      }
      case 11: {
        if (state_.retry_timer_at() == absl::InfiniteFuture()) return "retry (none)";
        *now = std::max(*now, state_.retry_timer_at());
        state_.OnRetryTimer(*now, a);
        return "retry fired";
      }
      case 12: {
        const std::vector<int>& idle = state_.idle_slots();
        if (idle.empty() || pick(2) == 0) {
          state_.Sweep(*now, a);
          return "sweep";
        }
        const int slot = idle[pick(static_cast<int>(idle.size()))];
        const uint64_t socket = state_.slot(slot).socket;
        if (pick(2) == 0) {
          state_.OnIdleBroken(slot, socket, *now, a);
          return "idle broken";
        }
        state_.Retire(slot, socket, "revoked", a);
        state_.Dispatch(*now, a);
        return "retire idle";
      }
      default: {
        if (pick(4) != 0) {
          state_.Dispatch(*now, a);
          return "dispatch";
        }
        if (state_.shut_down()) {
          state_.Resume(*now, a);
          return "resume";
        }
        state_.Shutdown(*now, a);
        return "shutdown";
      }
    }
  }

 private:
  const PoolOptions options_;
  PoolState state_;
  std::set<uint64_t> open_tickets_;  // Callers with no outcome yet.
  std::set<uint64_t> put_back_;      // Callers queued again after their grant failed.
  std::set<int> connecting_;         // Slots the state asked to connect.
  std::set<uint64_t> lent_;          // Sockets granted and not yet back.
  std::vector<PoolState::Grant> granted_;  // Not yet activated.
  std::vector<PoolState::Grant> leases_;   // Active.
  std::vector<std::pair<PoolState::Grant, bool>> returning_;
  uint64_t next_socket_ = 1;
};

TEST(PoolStateModelTest, RandomCommandSequencesKeepEveryInvariant) {
  constexpr int kSeeds = 20;
  constexpr int kSteps = 5000;
  std::map<std::string, int> seen;
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    std::mt19937 rng(seed);
    SocketBudget budget(4, nullptr);
    PoolOptions o = Options(3);
    o.min_idle = static_cast<int>(seed % 3);
    o.max_waiters = 4;
    o.backoff_initial = absl::Milliseconds(10);
    o.backoff_max = absl::Milliseconds(80);
    o.idle_timeout = absl::Milliseconds(200);
    o.max_lifetime = absl::Seconds(2);
    o.max_leases_per_socket = static_cast<int>(seed % 4);
    std::vector<std::unique_ptr<PoolModel>> pools;
    pools.push_back(std::make_unique<PoolModel>("b1", o, &budget, seed));
    pools.push_back(std::make_unique<PoolModel>("b2", o, &budget, seed + 1000));
    absl::Time now = kStart;
    for (auto& p : pools) {
      Actions a;
      p->state().Start(now, &a);
      ASSERT_EQ(p->Absorb(a, &seen), "") << "seed " << seed;
    }
    for (int step = 0; step < kSteps; ++step) {
      PoolModel& p = *pools[rng() % pools.size()];
      Actions a;
      const std::string command = p.Step(rng, &now, &a);
      ++seen[absl::StrCat("command:", command)];
      const std::string bad = p.Absorb(a, &seen);
      ASSERT_EQ(bad, "") << "seed " << seed << " step " << step << " (" << command << ")";
      int held = 0;
      for (auto& q : pools) held += q->state().budget_held();
      ASSERT_EQ(budget.used(), held) << "seed " << seed << " step " << step;
      ASSERT_LE(budget.used(), budget.limit()) << "seed " << seed << " step " << step;
    }
  }
  // The walk is only worth something if it reached the paths it is meant to check.
  for (const char* what :
       {"grant:any", "grant:slot", "failure:UNAVAILABLE", "failure:RESOURCE_EXHAUSTED",
        "failure:DEADLINE_EXCEEDED", "failure:CANCELLED", "close:drain", "close:idle",
        "close:revoked", "command:grant failed", "command:returned", "command:shutdown",
        "command:resume", "command:connect failed", "command:retry fired",
        "command:idle broken", "command:forget"}) {
    EXPECT_GT(seen[what], 0) << what << " never happened";
  }
}

}  // namespace
}  // namespace tlsbroker
