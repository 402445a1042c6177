/*
 * Drives the DMA mirror (native/src/mirror.c) with real threads and checks every byte, built with
 * AddressSanitizer + UndefinedBehaviorSanitizer (or ThreadSanitizer) by test/native-mirror.test.ts:
 *   - CHANNELS kernel pairs: a host producer thread writes random-size frames into the host input ring, an echo
 *     "kernel" thread reads the device replica and writes each frame to the device output ring, a host consumer
 *     thread reads the host output ring and checks sequence and content. Rings are small: they wrap and fill.
 *   - Half the pairs are detached while their traffic flows, and their memory is freed the moment detach returns:
 *     a mirror that touched it afterwards is a heap-use-after-free.
 *   - The mirror is stopped and destroyed while the other half still copies; then their memory is freed.
 *   - The waker thread's callback is slow (it stands for JavaScript) and is running when the mirror stops.
 *   - The consumers also serve their pair's rings themselves (rk_mirror_serve, as a host waiting for a call's
 *     response does), at seeded random moments, racing the copy thread for the same channels; idle rings are
 *     attached meanwhile, so the channel table grows under them.
 * Prints "mirror stress ok ..." and exits 0, or names the first wrong byte and exits 1.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringkernel_mirror.h"

#define CHANNELS 8
#define STORAGE 2048u
#define MAX_PAYLOAD 300u
#define FRAMES_BEFORE_DETACH 20000u
#define IDLE_RINGS 100

typedef struct ring {
  uint8_t *memory; /* header + STORAGE bytes */
  rk_ring_signal *signal;
} ring;

typedef struct pair {
  rk_mirror *mirror;
  ring host_in, device_in, host_out, device_out;
  rk_mirror_channel *stats_in, *stats_out;
  int32_t id_in, id_out;
  _Atomic int stop;
  _Atomic uint64_t checked;
  pthread_t producer, kernel, consumer;
  uint32_t seed;
  _Atomic int failed;
  _Atomic uint64_t served, serve_wakes;
} pair;

static _Atomic uint64_t wake_calls;
/* The consumers serve only while the mirror exists (they run on after it is destroyed). */
static _Atomic int serve_allowed = 1;
static _Atomic int serves_in_flight;

static void slow_wake(void) {
  atomic_fetch_add(&wake_calls, 1);
  struct timespec pause = {0, 200000}; /* 200 µs: a callback waiting for a busy event loop */
  nanosleep(&pause, NULL);
}

static ring ring_new(void) {
  ring r = {calloc(1, RK_RING_HEADER_SIZE + STORAGE), calloc(1, sizeof(rk_ring_signal))};
  return r;
}
static void ring_free(ring *r) {
  free(r->memory);
  free(r->signal);
  r->memory = NULL;
  r->signal = NULL;
}
static rk_ring_header *hdr(ring *r) { return (rk_ring_header *)r->memory; }
static uint8_t *data(ring *r) { return r->memory + RK_RING_HEADER_SIZE; }

static uint32_t frame_size(uint32_t seq, uint32_t seed) {
  return RK_FRAME_HEADER_SIZE + (seq * 2654435761u ^ seed) % (MAX_PAYLOAD + 1);
}
static uint8_t frame_byte(uint32_t seq, uint32_t i) { return (uint8_t)(seq * 31u + i * 7u); }

static void copy_in(ring *r, uint32_t at, const uint8_t *src, uint32_t n) {
  uint32_t first = STORAGE - at < n ? STORAGE - at : n;
  memcpy(data(r) + at, src, first);
  memcpy(data(r), src + first, n - first);
}
static void copy_out(ring *r, uint32_t at, uint8_t *dst, uint32_t n) {
  uint32_t first = STORAGE - at < n ? STORAGE - at : n;
  memcpy(dst, data(r) + at, first);
  memcpy(dst + first, data(r), n - first);
}

/* Producer: publish one frame when there is room for all of it (the ring contract). */
static bool try_write(ring *r, const uint8_t *frame, uint32_t length) {
  uint32_t size = (length + 7u) & ~7u;
  uint32_t write = atomic_load_explicit(&hdr(r)->write_index, memory_order_relaxed);
  uint32_t read = atomic_load_explicit(&hdr(r)->read_index, memory_order_acquire);
  if ((read - write - 1 + STORAGE) % STORAGE < size) return false;
  copy_in(r, write, frame, length);
  atomic_store_explicit(&hdr(r)->write_index, (write + size) % STORAGE, memory_order_release);
  return true;
}
/* Consumer: take one frame if one is published. */
static bool try_read(ring *r, uint8_t *frame, uint32_t *length) {
  uint32_t read = atomic_load_explicit(&hdr(r)->read_index, memory_order_relaxed);
  uint32_t write = atomic_load_explicit(&hdr(r)->write_index, memory_order_acquire);
  if (read == write) return false;
  uint32_t len;
  copy_out(r, read, (uint8_t *)&len, 4);
  copy_out(r, read, frame, len);
  *length = len;
  atomic_store_explicit(&hdr(r)->read_index, (read + ((len + 7u) & ~7u)) % STORAGE, memory_order_release);
  return true;
}

static void *producer_main(void *arg) {
  pair *p = arg;
  uint8_t frame[RK_FRAME_HEADER_SIZE + MAX_PAYLOAD];
  for (uint32_t seq = 0; !atomic_load(&p->stop); seq++) {
    uint32_t length = frame_size(seq, p->seed);
    memset(frame, 0, RK_FRAME_HEADER_SIZE);
    memcpy(frame, &length, 4);
    memcpy(frame + RK_FRAME_HEADER_MESSAGE_ID_OFFSET, &seq, 4);
    for (uint32_t i = RK_FRAME_HEADER_SIZE; i < length; i++) frame[i] = frame_byte(seq, i);
    while (!try_write(&p->host_in, frame, length)) {
      if (atomic_load(&p->stop)) return NULL;
      sched_yield();
    }
  }
  return NULL;
}

static void *kernel_main(void *arg) {
  pair *p = arg;
  uint8_t frame[RK_FRAME_HEADER_SIZE + MAX_PAYLOAD];
  uint32_t length;
  while (!atomic_load(&p->stop)) {
    if (!try_read(&p->device_in, frame, &length)) {
      sched_yield();
      continue;
    }
    while (!try_write(&p->device_out, frame, length)) {
      if (atomic_load(&p->stop)) return NULL;
      sched_yield();
    }
  }
  return NULL;
}

/* xorshift32: the consumer's seeded choices of when to serve. */
static uint32_t next_random(uint32_t *state) {
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *state = x;
}

static void *consumer_main(void *arg) {
  pair *p = arg;
  uint8_t frame[RK_FRAME_HEADER_SIZE + MAX_PAYLOAD];
  uint32_t length;
  uint32_t random = p->seed | 1u;
  for (uint32_t expected = 0; !atomic_load(&p->stop);) {
    if (!try_read(&p->host_out, frame, &length)) {
      /* Half the time, carry the pair's rings across itself instead of waiting for the copy thread (the ids stay
         valid after a detach: serving them then must do nothing). */
      if (next_random(&random) & 1u) {
        /* Dekker with main: it clears serve_allowed, then waits for serves_in_flight to drain before destroying. */
        atomic_fetch_add(&serves_in_flight, 1);
        if (atomic_load(&serve_allowed)) {
          int32_t served = rk_mirror_serve(p->mirror, p->id_in, p->id_out);
          if (served & RK_SERVE_MOVED) atomic_fetch_add(&p->served, 1);
          if (served & RK_SERVE_WAKE) atomic_fetch_add(&p->serve_wakes, 1);
        }
        atomic_fetch_sub(&serves_in_flight, 1);
      } else {
        sched_yield();
      }
      continue;
    }
    uint32_t seq;
    memcpy(&seq, frame + RK_FRAME_HEADER_MESSAGE_ID_OFFSET, 4);
    bool ok = seq == expected && length == frame_size(seq, p->seed);
    for (uint32_t i = RK_FRAME_HEADER_SIZE; ok && i < length; i++) ok = frame[i] == frame_byte(seq, i);
    if (!ok) {
      fprintf(stderr, "pair seed %u: frame %u came back as frame %u (%u bytes): lost, reordered or corrupted\n",
              p->seed, expected, seq, length);
      atomic_store(&p->failed, 1);
      return NULL;
    }
    expected++;
    atomic_fetch_add(&p->checked, 1);
  }
  return NULL;
}

static void pair_start(rk_mirror *m, pair *p, uint32_t seed) {
  memset(p, 0, sizeof *p);
  p->mirror = m;
  p->seed = seed;
  p->host_in = ring_new();
  p->device_in = ring_new();
  p->host_out = ring_new();
  p->device_out = ring_new();
  p->stats_in = calloc(1, sizeof(rk_mirror_channel));
  p->stats_out = calloc(1, sizeof(rk_mirror_channel));
  p->id_in = rk_mirror_attach(m, RK_MIRROR_HOST_TO_DEVICE, p->host_in.memory, p->device_in.memory, STORAGE,
                              p->host_in.signal, p->device_in.signal, p->stats_in);
  p->id_out = rk_mirror_attach(m, RK_MIRROR_DEVICE_TO_HOST, p->host_out.memory, p->device_out.memory, STORAGE,
                               p->host_out.signal, p->device_out.signal, p->stats_out);
  if (p->id_in < 0 || p->id_out < 0) {
    fprintf(stderr, "attach failed\n");
    exit(1);
  }
  /* The consumers sleep, as JS waiters would: every publish asks for a wake-up. */
  atomic_store(&p->device_in.signal->consumer_sleeping, 1);
  atomic_store(&p->host_out.signal->consumer_sleeping, 1);
  pthread_create(&p->producer, NULL, producer_main, p);
  pthread_create(&p->kernel, NULL, kernel_main, p);
  pthread_create(&p->consumer, NULL, consumer_main, p);
}

static void pair_stop_threads(pair *p) {
  atomic_store(&p->stop, 1);
  pthread_join(p->producer, NULL);
  pthread_join(p->kernel, NULL);
  pthread_join(p->consumer, NULL);
}

static void pair_free(pair *p) {
  ring_free(&p->host_in);
  ring_free(&p->device_in);
  ring_free(&p->host_out);
  ring_free(&p->device_out);
  free(p->stats_in);
  free(p->stats_out);
}

static uint64_t served_total;

static uint64_t checked(pair *pairs) {
  uint64_t total = 0;
  for (int i = 0; i < CHANNELS; i++) total += atomic_load(&pairs[i].checked);
  return total;
}

int main(void) {
  rk_mirror_state *state = calloc(1, sizeof *state);
  rk_mirror *m = rk_mirror_create("cpu", 100, 50, slow_wake, state);
  if (m == NULL || rk_mirror_create("no-such-device", 100, 50, NULL, state) != NULL) {
    fprintf(stderr, "create: wrong result\n");
    return 1;
  }
  static pair pairs[CHANNELS];
  for (int i = 0; i < CHANNELS; i++) pair_start(m, &pairs[i], 0x5eed0000u + (uint32_t)i);
  /* Idle rings attached while the pairs run: the table grows past its first chunk under the serving consumers. */
  static ring idle_rings[IDLE_RINGS][2];
  static rk_mirror_channel idle_stats[IDLE_RINGS];
  int32_t idle_ids[IDLE_RINGS];
  for (int i = 0; i < IDLE_RINGS; i++) {
    idle_rings[i][0] = ring_new();
    idle_rings[i][1] = ring_new();
    idle_ids[i] = rk_mirror_attach(m, RK_MIRROR_HOST_TO_DEVICE, idle_rings[i][0].memory, idle_rings[i][1].memory,
                                   STORAGE, idle_rings[i][0].signal, idle_rings[i][1].signal, &idle_stats[i]);
    if (idle_ids[i] < 0) {
      fprintf(stderr, "idle attach failed\n");
      return 1;
    }
  }
  while (checked(pairs) < FRAMES_BEFORE_DETACH * CHANNELS / 2) sched_yield();
  for (int i = 0; i < IDLE_RINGS; i++) {
    if (rk_mirror_detach(m, idle_ids[i]) < 0) {
      fprintf(stderr, "idle detach failed\n");
      return 1;
    }
    ring_free(&idle_rings[i][0]);
    ring_free(&idle_rings[i][1]);
  }
  /* Detach half while they run; free their memory at once. */
  uint64_t detached_frames = 0;
  for (int i = 0; i < CHANNELS / 2; i++) {
    if (rk_mirror_detach(m, pairs[i].id_in) < 0 || rk_mirror_detach(m, pairs[i].id_out) < 0) {
      fprintf(stderr, "detach failed\n");
      return 1;
    }
    if (rk_mirror_detach(m, pairs[i].id_in) != -1) {
      fprintf(stderr, "double detach accepted\n");
      return 1;
    }
    pair_stop_threads(&pairs[i]);
    detached_frames += atomic_load(&pairs[i].checked);
    served_total += atomic_load(&pairs[i].served);
    pair_free(&pairs[i]);
  }
  /* The others keep going a little, then the mirror stops under them. */
  uint64_t mark = checked(pairs);
  while (checked(pairs) < mark + FRAMES_BEFORE_DETACH) sched_yield();
  rk_mirror_stop(m); /* the consumers' serves now find a stopped mirror and do nothing */
  while (!rk_mirror_waker_exited(m)) sched_yield(); /* the slow callback returns, then the waker */
  atomic_store(&serve_allowed, 0);
  while (atomic_load(&serves_in_flight) != 0) sched_yield();
  rk_mirror_destroy(m);
  uint64_t total = checked(pairs);
  int failed = 0;
  for (int i = CHANNELS / 2; i < CHANNELS; i++) {
    pair_stop_threads(&pairs[i]);
    failed |= atomic_load(&pairs[i].failed);
    served_total += atomic_load(&pairs[i].served);
    pair_free(&pairs[i]);
  }
  for (int i = 0; i < CHANNELS / 2; i++) failed |= atomic_load(&pairs[i].failed);
  uint64_t passes = atomic_load(&state->passes);
  free(state);
  if (failed) return 1;
  printf("mirror stress ok: %llu frames checked (%llu before detach), %llu passes, %llu wake calls, %llu served\n",
         (unsigned long long)total, (unsigned long long)detached_frames, (unsigned long long)passes,
         (unsigned long long)atomic_load(&wake_calls), (unsigned long long)served_total);
  return 0;
}
