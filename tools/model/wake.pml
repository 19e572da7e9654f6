/* wake.pml: the park/wake, interrupt and close protocol of pushstage's Dispatcher
 * (core/queue_core.hpp), at the level of its atomic operations. Tags (P0)..(K5) are the header's.
 *
 * Memory model. Every operation the protocol pairs (P2/P3 with W1/W2, S1/S2, K1/K2 with P0,
 * K4/K5) is seq_cst (or the asymmetric fence pair, which orders like two seq_cst fences), so
 * Promela's interleaving semantics is exact for them. With DispatcherOptions::fast_push, (P2) is
 * a plain store whose order before (P3) comes only from the pair (light fence; the consumer's
 * heavy fence before its second read, W2'/S2'); -DFAST_PUSH models that with a store buffer:
 * each producer's stores to its slot (P0, P2, P4) enter a FIFO of its own and reach memory later,
 * at any step (a Flusher per producer), while the producer's own loads (the closed flag, P3) go
 * ahead of them, as on x86 (TSO); a heavy fence (membarrier: K2, W2', S2') drains every buffer
 * in one step, which is what membarrier's barrier on each running thread guarantees here. FIFO
 * is what C++ promises for these stores too, on any hardware: P2 and P4 are release stores, so
 * each is seen after the slot's stores before it, and P0 writes the location P4 wrote, whose
 * stores keep program order (coherence). The popped counters are release/acquire in
 * the code; reading them stale only raises the computed buffer count (the header argues why),
 * and here they are read as current values, one counter per step.
 * moodycamel's try_dequeue is not linearizable: it may fail while an event is buffered if another
 * consumer is in the middle of a dequeue. try_pop models that: a dequeue attempt takes two steps
 * and may fail spuriously while another consumer's attempt is in progress.
 *
 * Checked (spin -a; pan -E is not used, so invalid end states count):
 *   - no event is handled twice (assert in take);
 *   - no deadlock: a consumer parked forever (a lost wakeup, or no wake after close) leaves the
 *     system blocked in a non-end state;
 *   - when every consumer has returned "drained", every accepted event was handled (Check).
 * Bugs it must catch (compile with -D):
 *   NO_RECHECK      the consumer parks without (W2): lost wakeup;
 *   LOAD_FIRST      the producer reads demand (P3) before publishing its count (P2): lost wakeup;
 *   NO_GRACE        close() publishes final_ without waiting for pushes in progress (K3): an
 *                   accepted event is never handled.
 * With -DFAST_PUSH (the store buffer above; pass expected). Bugs:
 *   NO_HEAVY_W2     a consumer parks without the heavy fence and second read (W2'): a push whose
 *                   P2 sits in its buffer while its P3 reads demand and the consumer reads W2 is
 *                   never woken for (a lost wakeup).
 *   NO_HEAVY_S2     the last spinner hands on events without the heavy fence (S2'): passes
 *                   without -DINTERRUPT (the spinner pops again before it can park, and its W2'
 *                   sees the count) and fails with it: a spinner that leaves after S1 (retired
 *                   by its pool) strands the event while the other consumer stays parked.
 * With -DINTERRUPT an Interrupter retires consumer 0 (a pool's resize(): the retire flag, then
 * (I1)/(I2)); consumer 0 re-checks the flag whenever its interruptible wait returns, and the
 * closer waits for it to have retired, so an interrupt that is lost leaves it parked forever (a
 * deadlock that spin reports). Bug:
 *   NO_W3           the consumer parks without reading the interrupt flag after its ticket.
 */
#ifndef NP
#define NP 2
#endif
#define NC 2          /* consumers */
#ifndef NE
#define NE 2          /* events per producer */
#endif
#define MAXSPIN 1     /* max_spinners */

byte q[2];                 /* events buffered per producer sub-queue (FIFO order irrelevant) */
byte next_take[2];         /* index of the next event a dequeue takes from each sub-queue */
byte handled[2 * NE];      /* deliveries per event id */
byte accepted;              /* pushes that returned Pushed */
byte handled_total;         /* events taken by consumers */
byte pushed[2];            /* producer slots' counters (P2) */
bit pushing[2];            /* (P0)..(P4) */
byte popped[NC];            /* consumer slots' counters */
byte parked;                /* demand_: parked consumers */
byte spinning;              /* demand_: spinning consumers */
bit ticket[NC];             /* 1: parked (published after W1) */
bit futex[NC];
bit mid[NC];                /* a dequeue attempt in progress */
bit closed;                 /* closed_ */
bit final;                  /* final_ */
byte drained;               /* consumers that returned "drained" (or retired) */
byte producers_done;
bit intr[NC];               /* slot.interrupt (I1) */
bit retire0;                /* the pool's retire flag of consumer 0 */
bit retired0;               /* consumer 0 has retired */
/* A producer's store to its slot (P0, P2, P4): straight to memory, or with -DFAST_PUSH into the
 * producer's store buffer. */
#ifdef FAST_PUSH
/* Each producer's store buffer: 0 or 1 = P0/P4 (pushing = that value), SB_COUNT = P2 (pushed++). */
#define SB_COUNT 2
chan sb[2] = [6] of { byte };
#define STORE_PUSHING(p, v) sb[p]!v
#define STORE_COUNT(p) sb[p]!SB_COUNT

inline apply_store(p, k) {
  if
  :: k == SB_COUNT -> pushed[p]++
  :: else -> pushing[p] = k
  fi
}

/* The oldest store of producer p's buffer reaches memory: at any step. */
proctype Flusher(byte p) {
  byte k;
end:
  do
  :: atomic { sb[p]?k -> apply_store(p, k); k = 0 }
  od
}

/* heavy_fence() (membarrier): every buffered store reaches memory, in one step. Without
 * -DFAST_PUSH there are no buffers and its call sites add no step. */
inline heavy_fence() {
  atomic {
    do
    :: nempty(sb[0]) -> sb[0]?hf_k; apply_store(0, hf_k)
    :: nempty(sb[1]) -> sb[1]?hf_k; apply_store(1, hf_k)
    :: empty(sb[0]) && empty(sb[1]) -> break
    od;
    hf_k = 0
  }
}
#else
#define STORE_PUSHING(p, v) pushing[p] = v
#define STORE_COUNT(p) pushed[p]++
#endif

/* Wake up to one parked consumer; X1, X2, X3. The code picks the oldest (Fifo) or newest (Lifo)
 * ticket; which one it picks does not matter for correctness, so the model picks any published
 * ticket (covering both orders). Tickets are 0/1 here: a CAS that succeeds on a re-published
 * ticket (ABA; the code's tickets are unique) still claims a consumer that is parked. */
inline wake_one() {
  do
  :: true ->
    atomic {            /* the scan */
      w_best = NC; w_i = 0;
      do
      :: w_i < NC && ticket[w_i] != 0 -> w_best = w_i; w_i++
      :: w_i < NC && (ticket[w_i] == 0 || w_best != NC) -> w_i++   /* skip only after a pick */
      :: else -> break
      od
    }
    if
    :: w_best == NC -> w_best = 0; w_i = 0; break
    :: else ->
      atomic {          /* X1: CAS ticket -> 0 */
        if
        :: ticket[w_best] != 0 -> ticket[w_best] = 0; w_i = 1
        :: else -> w_i = 0
        fi
      }
      if
      :: w_i == 1 ->
        atomic { parked--; spinning++ }   /* X2 */
        futex[w_best] = 1;                 /* X3 (and FUTEX_WAKE) */
        w_best = 0; w_i = 0;
        break
      :: else -> skip                      /* lost the race: scan again */
      fi
    fi
  od
}

/* wake(~0): claim parked consumers until a scan finds no ticket (as the code does) */
inline wake_all() {
  byte wa_left;
  do
  :: true ->
    atomic {
      wa_left = 0; w_i = 0;
      do :: w_i < NC -> if :: ticket[w_i] != 0 -> wa_left++ :: else -> skip fi; w_i++ :: else -> break od
    };
    if :: wa_left > 0 -> wake_one() :: else -> break fi
  od
}

/* buffered = popped ... then pushed: the (W2)/(S2) read. Each sum is read in one step: the
 * counters are monotonic and read popped-first, so reading a sum counter by counter can only
 * give a value between the two snapshots below (the header's argument); one step per sum keeps
 * the state space small enough to explore exhaustively. */
inline read_buffered(result) {
  byte rb_pop;
  atomic { rb_pop = popped[0] + popped[1] };
  atomic { result = pushed[0] + pushed[1] - rb_pop; rb_pop = 0 }  /* >= 128: "negative", none */
}

proctype Producer(byte p) {
  byte e, d_parked, d_spin;
  byte w_best, w_i;
  e = 0;
  do
  :: e < NE ->
    STORE_PUSHING(p, 1);                     /* P0 */
    if
    :: closed -> STORE_PUSHING(p, 0); break  /* after close: not accepted */
    :: else -> skip
    fi;
#ifdef LOAD_FIRST
    atomic { d_parked = parked; d_spin = spinning };  /* P3 moved before the count: the bug */
#endif
    q[p]++;                                  /* enqueue */
    STORE_COUNT(p);                          /* P2 */
    accepted++;
    STORE_PUSHING(p, 0);                     /* P4 */
#ifndef LOAD_FIRST
    atomic { d_parked = parked; d_spin = spinning };  /* P3 */
#endif
    if
    :: d_parked > 0 && d_spin == 0 -> wake_one()
    :: else -> skip
    fi;
    e++
  :: else -> break
  od;
  producers_done++
}

/* one dequeue attempt: two steps; may fail spuriously while another attempt is in progress */
inline try_pop(me, got) {
  byte tp_p;
  mid[me] = 1;
  atomic {
    got = 0;
    if
    :: mid[1 - me] -> skip                   /* spurious failure (moodycamel) */
    :: true ->
      tp_p = 0;
      do
      :: tp_p < NP && q[tp_p] > 0 ->
        q[tp_p]--;
        handled[tp_p * NE + next_take[tp_p]]++;
        assert(handled[tp_p * NE + next_take[tp_p]] == 1);   /* exactly once */
        handled_total++;
        next_take[tp_p]++;
        got = 1;
        break
      :: tp_p < NP && q[tp_p] == 0 -> tp_p++
      :: tp_p < NP && q[tp_p] > 0 -> tp_p++   /* any sub-queue may be picked */
      :: tp_p >= NP -> break
      od
    fi;
    mid[me] = 0;
    tp_p = 0
  };
  if :: got -> popped[me]++ :: else -> skip fi  /* note_popped: after the dequeue */
}

/* S1 + S2: a spinning (or woken) consumer stops searching */
inline stop_searching() {
  byte ss_before, ss_parked, ss_b;
  atomic { ss_before = spinning; ss_parked = parked; spinning-- };  /* S1 */
  if
  :: ss_before == 1 && ss_parked > 0 ->
    read_buffered(ss_b);                                           /* S2 */
#if defined(FAST_PUSH) && !defined(NO_HEAVY_S2)
    if
    :: !(ss_b > 0 && ss_b < 128) -> heavy_fence(); read_buffered(ss_b)  /* S2' */
    :: else -> skip
    fi;
#endif
    if :: ss_b > 0 && ss_b < 128 -> wake_one() :: else -> skip fi
  :: else -> skip
  fi;
  ss_before = 0; ss_parked = 0; ss_b = 0
}

proctype Consumer(byte me) {
  byte w_best, w_i;
  bit got, searching, fin, in;
  byte b, cancelled;
#ifdef FAST_PUSH
  byte hf_k;
#endif
loop:
#ifdef INTERRUPT
  if :: me == 0 && retire0 -> goto retired :: else -> skip fi;   /* the pool's check, (R1) */
#endif
  try_pop(me, got);
  if :: got -> goto loop :: else -> skip fi;
  /* spin phase: register as a spinner if there is room, poll once */
  atomic { if :: spinning < MAXSPIN -> spinning++; searching = 1 :: else -> searching = 0 fi };
  if
  :: searching ->
    try_pop(me, got);
    if :: got -> stop_searching(); searching = 0; goto loop :: else -> skip fi
  :: else -> skip
  fi;
park:
  futex[me] = 0;
#ifdef TICKET_FIRST
  ticket[me] = 1;           /* the bug this model found: the ticket published before W1 */
  atomic { parked++; if :: searching -> spinning-- :: else -> skip fi };  /* W1 */
#else
  atomic { parked++; if :: searching -> spinning-- :: else -> skip fi };  /* W1 */
  ticket[me] = 1;                                                        /* publish after W1 */
#endif
  searching = 0;
#ifdef NO_RECHECK
  b = 0; fin = 0;
#else
  fin = final;                                                           /* W2 */
  read_buffered(b);
#if defined(FAST_PUSH) && !defined(NO_HEAVY_W2)
  if
  :: !(b > 0 && b < 128) && !fin ->                  /* W2': nothing seen */
    heavy_fence();
    fin = final;
    read_buffered(b)
  :: else -> skip
  fi;
#endif
#endif
#if defined(INTERRUPT) && !defined(NO_W3)
  in = intr[me];                                                         /* W3 */
#else
  in = 0;
#endif
  if
  :: b > 0 && b < 128 || fin || in ->
    /* cancel: CAS ticket -> 0, racing X1 */
    atomic { if :: ticket[me] != 0 -> ticket[me] = 0; cancelled = 1 :: else -> cancelled = 0 fi };
    if
    :: cancelled -> atomic { parked--; if :: b > 0 && b < 128 -> spinning++; searching = 1 :: else -> skip fi }
    :: else -> (futex[me] == 1); searching = 1     /* claimed: take the notification */
    fi;
    if
    :: b > 0 && b < 128 ->
      try_pop(me, got);
      if
      :: got -> stop_searching(); searching = 0; goto loop
      :: else -> goto park                           /* backoff, then re-check */
      fi
    :: !(b > 0 && b < 128) && fin ->                 /* drained (events take precedence) */
      if :: searching -> spinning-- :: else -> skip fi;
      goto done
    :: else ->                                       /* interrupted: S1/S2 if counted */
      intr[me] = 0;
      if :: searching -> stop_searching(); searching = 0 :: else -> skip fi;
      goto loop
    fi
  :: else ->
    (futex[me] == 1);                                /* sleep on the futex word */
    searching = 1;
    try_pop(me, got);
    if
    :: got -> stop_searching(); searching = 0; goto loop
    :: intr[me] -> intr[me] = 0; stop_searching(); searching = 0; goto loop
    :: else -> goto park
    fi
  fi;
done:
  drained++;
  goto end;
retired:
  retired0 = 1;
  drained++;
end:
  skip
}

/* A pool retiring consumer 0: the retire flag (R2), then (I1), (I2) and a claim as a waker's. */
proctype Interrupter() {
  byte w_i;
  retire0 = 1;
  intr[0] = 1;                                                            /* I1 */
  atomic {                                                                /* I2, X1 */
    if :: ticket[0] != 0 -> ticket[0] = 0; w_i = 1 :: else -> w_i = 0 fi
  };
  if
  :: w_i == 1 -> atomic { parked--; spinning++ }; futex[0] = 1          /* X2, X3 */
  :: else -> skip
  fi
}

proctype Closer() {
  byte k_i;
  byte w_best, w_i;
#ifdef FAST_PUSH
  byte hf_k;
#endif
#ifdef LATE_CLOSE
  /* Close only once every pushed event was handled: a stranded event (a lost wakeup) then leaves
   * the closer and the parked consumers blocked forever, which spin reports as a deadlock. */
  (producers_done == NP && handled_total == accepted);
#endif
#ifdef INTERRUPT
  (retired0 == 1);   /* a lost interrupt leaves consumer 0 parked and this closer waiting */
#endif
  closed = 1;                                       /* K1 (K2: the fence pair, SC here) */
#ifdef FAST_PUSH
  heavy_fence();                                    /* K2 drains the producers' buffers */
#endif
#ifndef NO_GRACE
  k_i = 0;
  do :: k_i < NP -> (pushing[k_i] == 0); k_i++ :: else -> break od;   /* K3 */
#endif
  final = 1;                                        /* K4 */
  if :: parked > 0 -> wake_all() :: else -> skip fi  /* K5 */
}

/* The demand counts stay within [0, NC]: a count that drifts is a protocol bug. */
active proctype Counts() {
end: do
  :: atomic { (parked > NC || spinning > NC) -> assert(false) }
  :: atomic { (q[0] > NE || q[1] > NE || pushed[0] > NE || pushed[1] > NE || popped[0] > NP*NE || popped[1] > NP*NE || accepted > NP*NE || drained > NC || producers_done > NP) -> assert(false) }
  od
}

proctype Check() {
  byte i;
  (drained == NC && producers_done == NP);
  /* every accepted event handled exactly once */
  i = 0;
  byte total = 0;
  do :: i < NP * NE -> total = total + handled[i]; i++ :: else -> break od;
  assert(total == accepted)
}

init {
  atomic {
    run Producer(0);
    if :: NP > 1 -> run Producer(1) :: else -> skip fi;
    run Consumer(0); run Consumer(1);
#ifdef FAST_PUSH
    run Flusher(0);
    if :: NP > 1 -> run Flusher(1) :: else -> skip fi;
#endif
#ifdef INTERRUPT
    run Interrupter();
#endif
    run Closer();
    run Check()
  }
}
