// throwing_move.cpp: must NOT compile. A Dispatcher of a type whose move constructor may throw is
// refused at compile time (tests/compile_fail/CMakeLists.txt expects the static_assert's message):
// moodycamel destroys an element whose move throws during a dequeue, so the event would be lost
// and never counted as popped.
#include <pushstage/dispatcher.hpp>

struct ThrowingMove {
  ThrowingMove() = default;
  ThrowingMove(ThrowingMove&&) noexcept(false) {}
};

int main() {
  pushstage::Dispatcher<ThrowingMove> d;
  (void)d.push(ThrowingMove{});
}
