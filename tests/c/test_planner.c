/* Arena planner: random lifetimes and sizes; no two items that are live at the same step
 * may share bytes, offsets are aligned, and the arena is never larger than the sum. */
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "test_common.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static size_t align_up(size_t v) { return (v + 63) / 64 * 64; }

int main(void) {
  for (int trial = 0; trial < 2000; trial++) {
    int n = 1 + (int)(next_rand() % 60), steps = 1 + (int)(next_rand() % 30);
    EmberPlanItem items[60];
    size_t sum = 0;
    for (int i = 0; i < n; i++) {
      int a = (int)(next_rand() % (uint64_t)steps), b = (int)(next_rand() % (uint64_t)steps);
      items[i].first = a < b ? a : b;
      items[i].last = a < b ? b : a;
      items[i].size = (next_rand() % 8 == 0) ? 0 : 1 + (size_t)(next_rand() % 5000);
      sum += align_up(items[i].size);
    }
    size_t arena = 0;
    CHECK_STATUS(ember_plan_arena(items, n, 64, &arena), EMBER_OK);
    CHECK(arena <= sum);
    for (int i = 0; i < n; i++) {
      CHECK(items[i].offset % 64 == 0);
      CHECK(items[i].offset + items[i].size <= arena);
      for (int j = i + 1; j < n; j++) {
        bool live_together = items[i].first <= items[j].last && items[j].first <= items[i].last;
        bool share = items[i].size && items[j].size &&
                     items[i].offset < items[j].offset + items[j].size &&
                     items[j].offset < items[i].offset + items[i].size;
        if (live_together && share) {
          CHECK(!"overlapping live items");
          fprintf(stderr, "trial %d: items %d and %d overlap\n", trial, i, j);
        }
      }
    }
  }
  /* A chain a -> b -> c of equal sizes needs two buffers, not three. */
  EmberPlanItem chain[3] = {{1000, 0, 1, 0}, {1000, 1, 2, 0}, {1000, 2, 3, 0}};
  size_t arena = 0;
  CHECK_STATUS(ember_plan_arena(chain, 3, 64, &arena), EMBER_OK);
  CHECK(arena == 2 * align_up(1000));
  CHECK_STATUS(ember_plan_arena(NULL, 0, 64, &arena), EMBER_OK);
  CHECK(arena == 0);
  return test_report("test_planner");
}
