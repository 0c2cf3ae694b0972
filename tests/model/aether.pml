/*
 * tests/model/aether.pml: a Promela model of Aether's leadership, fencing
 * and handoff protocol (DESIGN 2.4 and "Shard handoff"), checked by SPIN
 * (tools/model-check). docs/testing.md, "Model checking", maps every step
 * below to the C function that implements it.
 *
 * Actors: four processes of three node ids (P0, P1, P2 are nodes 0..2; P3 is
 * a second process of node 0 - a duplicate, started once, while P0 may
 * still run) and an environment (time, TTL expiry, faults). Each step is
 * one atomic transition. Time passes only when no running process has a
 * step left (`timeout`, maximal progress); a process is late only because
 * the environment paused it (SIGSTOP, a slow machine) and it takes no step
 * while time passes. At most one fault per tick (fault_now).
 *
 * Time is digital: TICK decrements every countdown at once. Every deadline
 * is a countdown started by the step that earns it. The clock-drift bound
 * is the safe-deadline rule: the holder's own countdown (TTL_L, for ttl -
 * safety_margin) is shorter than the store's (TTL_S, for ttl), and a
 * node's serving right (FENCE, for failure_timeout - fence_margin) is
 * shorter than both the leader's failure timeout (FAIL_T) and the handoff
 * timeout (HANDOFF_T).
 *
 * Guards that a -D flag removes (tools/model-check --weakened):
 *   NO_SELF_FENCE       a node serves on after its serving right lapsed
 *   NO_TERM_CHECK       a candidate acts on a revision not above the
 *                       recorded term (acquire steps 2b, 3, 4)
 *   NO_TERM_VERIFY      a follower believes a higher term without asking
 *                       the lease store
 *   NO_INCARNATION_RULE the leader acknowledges any process of an id, and a
 *                       process never learns it was superseded
 * Bounds (the state space is finite only with them): BUCKET_REVS revisions
 * of the lease bucket in all, MAP_VERSIONS map versions, FAILS_MAX failure
 * declarations, PAUSES pauses, RESIGNS resignations, and the fault budgets
 * CRASHES, TWINS, LOSSES, FORGERIES (tools/model-check sets them per run).
 */

#define N_PROC   4          /* P0..P2 = nodes 0..2, P3 = a duplicate of node 0 */
#define N_NODE   3
#define N_SHARD  2
#define NONE     3          /* no node */
#define NOPROC   4          /* no process (the lease key is absent) */

#ifndef BUCKET_REVS
#define BUCKET_REVS 4       /* revisions the lease bucket hands out, in all */
#endif
#ifndef MAP_VERSIONS
#define MAP_VERSIONS 4      /* map versions the leaders publish, in all */
#endif

/* Fault budgets (tools/model-check runs one configuration per fault). */
#ifndef CRASHES
#define CRASHES 1           /* node 1 crashes and restarts with a new incarnation */
#endif
#ifndef TWINS
#define TWINS 1             /* a second process of node 0 starts */
#endif
#ifndef LOSSES
#define LOSSES 1            /* the lease bucket is deleted and re-created */
#endif
#ifndef FORGERIES
#define FORGERIES 1         /* a forged event claims a term nobody holds */
#endif
#ifndef RESIGNS
#define RESIGNS 1           /* resignations, in all */
#endif
#ifndef PAUSES
#define PAUSES 1            /* process pauses, in all */
#endif
#ifndef FAILS_MAX
#define FAILS_MAX 1         /* nodes declared Failed, in all (each rejoin raises an incarnation) */
#endif

#define TTL_S     3         /* the store's TTL of a lease write (ticks) */
#define TTL_L     2         /* the holder's own deadline: ttl - safety_margin */
#define FENCE     2         /* serving right: failure_timeout - fence_margin */
#define FAIL_T    3         /* the leader's failure timeout */
#define HANDOFF_T 3         /* handoff_timeout: decree after it */

#define nid(p)   ((p) == 3 -> 0 : (p))

/* ---- the lease bucket (actors/kv_store.h, transport/nats_kv.h) ---------- */
byte ctr;                   /* the bucket's revision counter (next write = ctr + 1) */
byte lk_holder = NOPROC;      /* process holding the lease key; NONE = absent */
byte lk_rev;                /* revision of the key's last write */
byte lk_term;               /* the term the value names (0 while establishing) */
byte lk_ttl;                /* store-side TTL countdown of the key */
byte loss_wait;             /* after the bucket was lost: a ttl to wait (lease.h 2b) */

/* ---- the state bucket: term record and map (CAS-written authority) ------ */
byte rec;                   /* highest recorded term */
byte sm_ver, sm_term;       /* the stored map's stamp */
byte sm_own[N_SHARD];       /* primary node per shard; NONE = unassigned */
bit  sm_mov[N_SHARD];       /* Releasing(from = sm_own, to = sm_to) */
byte sm_to[N_SHARD];

/* ---- the stored topology (the leader's record) -------------------------- */
byte rinc[N_NODE];          /* incarnation the leader assigned (0 = never admitted) */
bit  rfail[N_NODE];         /* declared Failed */
byte hbt[N_NODE];           /* leader's failure-timeout countdown per node */

/* ---- handoff bookkeeping (leader side, member_assign_state) ------------- */
byte ho[N_SHARD];           /* handoff timeout countdown */
byte mvv[N_SHARD];          /* map version that began the handoff */
bit  acked[N_SHARD];        /* ShardReleased received for it */

/* ---- per process ------------------------------------------------------- */
bit  alive[N_PROC];
bit  paused[N_PROC];         /* stopped by the environment (SIGSTOP, a stall) */
#define up(p) (alive[p] && !paused[p])
byte myinc[N_PROC];         /* the incarnation this process claims */
bit  sup[N_PROC];           /* superseded */
byte est[N_PROC];           /* acquire in progress: 0 no, 1 created */
byte myrev[N_PROC];         /* our lease key revision */
byte lead[N_PROC];          /* leading_term (0 = none) */
byte ldl[N_PROC];           /* lease deadline countdown (lease_deadline_ns) */
bit  loaded[N_PROC];        /* took over: read the stored map in this term */
byte hi[N_PROC];            /* highest_term */
byte mver[N_PROC], mterm[N_PROC]; /* installed map */
byte mown[N_PROC * N_SHARD];
bit  mmov[N_PROC * N_SHARD];
byte mto[N_PROC * N_SHARD];
byte ann[N_PROC];           /* announced_version */
byte right[N_PROC];         /* serving right countdown (ack_sent_ns + limit) */
bit  hd[N_PROC * N_SHARD];  /* serving[s]: acquired, not released */
bit  adm[N_PROC];           /* admitted once (admitted_once) */
byte wt[N_PROC];            /* serve_after_ns countdown: an earlier process of our id
                               may still hold its shards */

/* ---- history, for the properties ---------------------------------------- */
byte maxterm;               /* highest term any holder acted on */
bit  calm;                  /* the faults have stopped */
byte crashes, twins, losses, forgeries, fails, pauses, resigns;
bit  fault_now;              /* the environment may inject one fault in this tick */

#define may_act(p)  (lead[p] != 0 && ldl[p] > 0)

#ifdef NO_SELF_FENCE
#define right_ok(p) (1)
#else
#define right_ok(p) (may_act(p) || right[p] > 0)
#endif

/* aether_member_may_serve */
#define may_serve(p) (alive[p] && !sup[p] && mterm[p] >= hi[p] && mver[p] >= ann[p] && right_ok(p))
#define held(p, s)   hd[(p) * N_SHARD + (s)]
#define serves(p, s) (held(p, s) && may_serve(p))

#define healthy(n)  (rinc[n] != 0 && !rfail[n])
#define silent(n)   (healthy(n) && hbt[n] == 0)
/* The strategy: shard s prefers node s, then the next healthy ones. */
#define target(s)   (healthy(s) -> (s) : (healthy(((s) + 1) % 3) -> ((s) + 1) % 3 : \
                                          (healthy(((s) + 2) % 3) -> ((s) + 2) % 3 : NONE)))

#define served(s)   (serves(0, s) || serves(1, s) || serves(2, s) || serves(3, s))
#define two(s)      ((serves(0, s) && (serves(1, s) || serves(2, s) || serves(3, s))) || \
                     (serves(1, s) && (serves(2, s) || serves(3, s))) || \
                     (serves(2, s) && serves(3, s)))
#define acting(p)   (alive[p] && may_act(p))
#define two_leaders ((acting(0) && (acting(1) || acting(2) || acting(3))) || \
                     (acting(1) && (acting(2) || acting(3))) || (acting(2) && acting(3)))

#define believed_real ((hi[0] <= maxterm) && (hi[1] <= maxterm) && (hi[2] <= maxterm) && (hi[3] <= maxterm))

/* Properties: single ownership and single leader at every instant (I1 under
 * the drift bound), as LTL over every state; progress once calm. */
active proctype Monitor()
{
end:
    atomic { (two(0) || two(1) || two_leaders || !believed_real) ->
        assert(!two(0) && !two(1));      /* no shard served by two processes */
        assert(!two_leaders);            /* at most one leader acts at any instant */
        assert(believed_real)            /* no node believes a term nobody held */
    }
}
/* Progress, within the bounds: once calm, both shards are eventually served
 * (or the map-version bound is reached, where the model stops publishing). */
ltl progress { [] (calm -> <> ((served(0) && served(1)) || sm_ver == MAP_VERSIONS)) }

/* Install the stored map into process p (member_assign.c, adopt). */
inline install(p) {
    assert(sm_ver > mver[p]);          /* a node's map version never goes back */
    mver[p] = sm_ver; mterm[p] = sm_term;
    mown[p * N_SHARD + 0] = sm_own[0]; mown[p * N_SHARD + 1] = sm_own[1];
    mmov[p * N_SHARD + 0] = sm_mov[0]; mmov[p * N_SHARD + 1] = sm_mov[1];
    mto[p * N_SHARD + 0] = sm_to[0];   mto[p * N_SHARD + 1] = sm_to[1]
}

/* reconcile's release half: drop every shard we serve that the map no
 * longer gives us stable (on_shard_released before anything else). */
inline release_unwanted(p) {
    if
    :: held(p, 0) && !(mown[p * N_SHARD] == nid(p) && !mmov[p * N_SHARD]) -> held(p, 0) = 0
    :: else
    fi;
    if
    :: held(p, 1) && !(mown[p * N_SHARD + 1] == nid(p) && !mmov[p * N_SHARD + 1]) -> held(p, 1) = 0
    :: else
    fi
}

inline note_term(p, t) {
    if :: t > hi[p] -> hi[p] = t :: else fi
}

/* A process starts (at boot, after a crash, or as the duplicate): nothing
 * of the previous process of its id survives; it claims an incarnation
 * above any it could have seen (its start time, member_cluster.c). */
inline boot(p, inc) {
    alive[p] = 1; myinc[p] = inc; sup[p] = 0; est[p] = 0; myrev[p] = 0; lead[p] = 0;
    ldl[p] = 0; loaded[p] = 0; hi[p] = 0; mver[p] = 0; mterm[p] = 0; ann[p] = 0;
    right[p] = 0; held(p, 0) = 0; held(p, 1) = 0; adm[p] = 0; wt[p] = 0;
    mown[p * N_SHARD] = NONE; mown[p * N_SHARD + 1] = NONE;
    mmov[p * N_SHARD] = 0; mmov[p * N_SHARD + 1] = 0;
    mto[p * N_SHARD] = NONE; mto[p * N_SHARD + 1] = NONE
}


#define leads_loaded(q) (up(q) && may_act(q) && loaded[q])
#define MO(p, s)  mown[(p) * N_SHARD + (s)]
#define MM(p, s)  mmov[(p) * N_SHARD + (s)]
#define MT(p, s)  mto[(p) * N_SHARD + (s)]
/* healthy() of a node index that may be NONE */
#define hl(n)     ((n) < N_NODE && healthy(n))
/* The leader's next map from the one it holds (member_assign.c, advance):
 * shard s unassigned or its owner gone -> direct; stable on a healthy
 * owner that is not the target -> Releasing(to); Releasing -> Stable(to) on
 * an acknowledgement, by decree after the handoff timeout, or at once if
 * the old owner is gone; a target that went away cancels the move. */
#define c_direct(p, s)  (!MM(p, s) && !hl(MO(p, s)) && target(s) != NONE)
#define c_move(p, s)    (!MM(p, s) && hl(MO(p, s)) && target(s) != NONE && target(s) != MO(p, s))
#define c_finish(p, s)  (MM(p, s) && hl(MT(p, s)) && (!hl(MO(p, s)) || acked[s] || ho[s] == 0))
#define c_cancel(p, s)  (MM(p, s) && !hl(MT(p, s)))
#define change(p, s)    (c_direct(p, s) || c_move(p, s) || c_finish(p, s) || c_cancel(p, s))

#define wants(p, s) (!held(p, s) && MO(p, s) == nid(p) && !MM(p, s))
#define releasing(p, s) (MM(p, s) && MO(p, s) == nid(p) && !held(p, s) && mver[p] >= mvv[s] && \
                         sm_mov[s] && !acked[s])

/* member_assign.c, reconcile: releases first (on_shard_released), then the
 * acknowledgement of a shard leaving us (send_ack -> ShardReleased; the
 * leader takes it only for the present handoff), then acquisitions: a
 * stable primary shard of ours, from a map that is current, while we may
 * serve (and, first admitted, after the wait that outlasts an earlier
 * process of our id: serve_after_ns). */
inline reconcile(p) {
    release_unwanted(p);
    if
    :: !sup[p] && releasing(p, 0) -> acked[0] = 1;
        printf("EV P%d acknowledges the release of shard 0\n", p)
    :: else
    fi;
    if
    :: !sup[p] && releasing(p, 1) -> acked[1] = 1;
        printf("EV P%d acknowledges the release of shard 1\n", p)
    :: else
    fi;
    if
    :: may_serve(p) && adm[p] && wt[p] == 0 && wants(p, 0) -> held(p, 0) = 1;
        printf("EV P%d acquires shard 0 (map v%d)\n", p, mver[p])
    :: else
    fi;
    if
    :: may_serve(p) && adm[p] && wt[p] == 0 && wants(p, 1) -> held(p, 1) = 1;
        printf("EV P%d acquires shard 1 (map v%d)\n", p, mver[p])
    :: else
    fi
}

hidden byte nown, nto, ns;
hidden byte nmov;

inline publish(p, s) {
    nown = MO(p, s); nmov = MM(p, s); nto = MT(p, s); ns = s;
    if
    :: c_direct(p, s) -> nown = target(s)
    :: c_move(p, s) -> nmov = 1; nto = target(s)
    :: c_finish(p, s) -> nown = nto; nmov = 0; nto = NONE
    :: c_cancel(p, s) -> nmov = 0; nto = NONE;
        if :: !hl(nown) -> nown = target(s) :: else fi
    fi;
    sm_ver++; sm_term = lead[p];
    sm_own[0] = MO(p, 0); sm_own[1] = MO(p, 1);
    sm_mov[0] = MM(p, 0); sm_mov[1] = MM(p, 1);
    sm_to[0] = MT(p, 0); sm_to[1] = MT(p, 1);
    sm_own[s] = nown; sm_mov[s] = nmov; sm_to[s] = nto;
    if
    :: nmov && !MM(p, s) -> ho[s] = HANDOFF_T; mvv[s] = sm_ver; acked[s] = 0
    :: else
    fi;
    printf("EV P%d publishes map v%d term %d: shard %d owner %d moving %d to %d\n",
           p, sm_ver, sm_term, ns, nown, nmov, nto);
    install(p); reconcile(p);
    nown = 0; nto = 0; ns = 0; nmov = 0
}

/* A keep-alive is due: the right or the leader's record runs down, or we
 * are not (or no longer) the admitted process of our id. */
#define ka_due(p) (up(p) && !sup[p] && (right[p] < FENCE || hbt[nid(p)] < FAIL_T || \
                   rinc[nid(p)] < myinc[p] || rfail[nid(p)]))

inline keepalive(p, q) {
#ifndef NO_INCARNATION_RULE
    if
    :: rinc[nid(p)] > myinc[p] -> sup[p] = 1; /* ESUPERSEDED: stop at once */
        printf("EV P%d is refused as superseded (incarnation %d < %d)\n", p, myinc[p], rinc[nid(p)])
    :: else
    fi;
#endif
    if
    :: sup[p] -> skip
    :: else ->
        if
        :: rinc[nid(p)] < myinc[p] || rfail[nid(p)] ->   /* admission: a new process, or a rejoin */
            if :: rfail[nid(p)] && rinc[nid(p)] >= myinc[p] -> myinc[p] = rinc[nid(p)] + 1 :: else fi;
            rinc[nid(p)] = myinc[p]; rfail[nid(p)] = 0;
            if :: !adm[p] -> adm[p] = 1; wt[p] = FAIL_T :: else fi
        :: else
        fi;
        hbt[nid(p)] = FAIL_T; right[p] = FENCE;
        if :: mver[q] > ann[p] -> ann[p] = mver[q] :: else fi;
        /* LeaseRenewed / the acknowledgement name the leader's term */
        note_term(p, lead[q]);
        printf("EV P%d keep-alive acknowledged by leader P%d (incarnation %d, record %d, term %d, map v%d)\n",
               p, q, myinc[p], rinc[nid(p)], lead[q], mver[q]);
        reconcile(p)
    fi
}


proctype Node(byte p)
{
end:
    do
    /* 1. Campaign: create the lease key (aether_lease_acquire step 1). */
    :: atomic { up(p) && !sup[p] && lead[p] == 0 && est[p] == 0 &&
                lk_holder == NOPROC && ctr < BUCKET_REVS ->
            ctr++; lk_holder = p; lk_rev = ctr; lk_term = 0; lk_ttl = TTL_S;
            myrev[p] = ctr; ldl[p] = TTL_L; est[p] = 1;
            printf("EV P%d creates the lease key at revision %d\n", p, ctr) }
    /* 2-6. Establish the term: read the record R; our revision <= R means
     * the lease bucket was re-created: wait a ttl (2b), then advance the
     * key past R (3); CAS the record to our revision (4); verify the key is
     * still ours (5); act (6). */
    :: atomic { up(p) && est[p] == 1 ->
            if
            :: lk_holder != p || lk_rev != myrev[p] || ldl[p] == 0 ->
                est[p] = 0;                      /* lost it, or too slow: never acted on */
                printf("EV P%d gives up establishing revision %d\n", p, myrev[p])
#ifndef NO_TERM_CHECK
            :: lk_holder == p && lk_rev == myrev[p] && ldl[p] > 0 && myrev[p] <= rec &&
               loss_wait > 0 ->
                est[p] = 0;                      /* 2b: AETHER_ESTALE, key left to expire */
                printf("EV P%d finds revision %d <= record %d: waits (ESTALE)\n", p, myrev[p], rec)
            :: lk_holder == p && lk_rev == myrev[p] && ldl[p] > 0 && myrev[p] <= rec &&
               loss_wait == 0 && ctr < BUCKET_REVS ->
                ctr++; lk_rev = ctr; myrev[p] = ctr; lk_ttl = TTL_S; ldl[p] = TTL_L; /* 3 */
                printf("EV P%d advances the lease key to revision %d\n", p, ctr)
            :: lk_holder == p && lk_rev == myrev[p] && ldl[p] > 0 && myrev[p] <= rec &&
               loss_wait == 0 && ctr >= BUCKET_REVS ->
                est[p] = 0
            :: lk_holder == p && lk_rev == myrev[p] && ldl[p] > 0 && myrev[p] > rec ->
#else
            :: lk_holder == p && lk_rev == myrev[p] && ldl[p] > 0 ->
#endif
                rec = myrev[p];                  /* 4: CAS the record */
                lead[p] = myrev[p]; est[p] = 0; loaded[p] = 0;
                /* terms never repeat: each acted-on term is above all before */
                assert(lead[p] > maxterm);
                maxterm = lead[p];
                note_term(p, lead[p]);
                printf("EV P%d records term %d and leads\n", p, lead[p]);
                /* take over (policy 10, takeover_load): read the stored map */
                if :: sm_ver > mver[p] -> install(p); reconcile(p) :: else fi;
                loaded[p] = 1;
#ifndef NO_INCARNATION_RULE
                /* ... and the stored topology: our id at a higher incarnation
                 * means we are superseded: stop, resign (member_cluster.c,
                 * supersede) */
                if
                :: rinc[nid(p)] > myinc[p] -> sup[p] = 1; lead[p] = 0;
                    if :: lk_holder == p && lk_rev == myrev[p] -> lk_holder = NOPROC :: else fi;
                    printf("EV P%d finds itself superseded in the stored topology: resigns\n", p)
                :: else
                fi
#endif
            fi }
    /* Renew (aether_lease_renew): CAS on our revision and nonce. */
    :: atomic { up(p) && may_act(p) && ldl[p] < TTL_L ->
            if
            :: lk_holder == p && lk_rev == myrev[p] ->
                ldl[p] = TTL_L; lk_ttl = TTL_S; lk_term = lead[p];
                printf("EV P%d renews term %d\n", p, lead[p])
            :: else -> lead[p] = 0;              /* ECONFLICT: lost */
                printf("EV P%d: renewal refused, stops leading\n", p)
            fi }
    /* Lose by the clock (member_may_lead false; lose_term). */
    :: atomic { up(p) && lead[p] != 0 && ldl[p] == 0 -> lead[p] = 0;
            printf("EV P%d: lease deadline passed, stops leading\n", p) }
    /* Resign (aether_lease_resign): delete our own key only. */
    :: atomic { up(p) && fault_now && resigns < RESIGNS && may_act(p) -> fault_now = 0; resigns++;
            if :: lk_holder == p && lk_rev == myrev[p] -> lk_holder = NOPROC :: else fi;
            lead[p] = 0;
            printf("EV P%d resigns\n", p) }
    /* Leader: the failure check (tick_failcheck, policy 4): a healthy node
     * silent for the failure timeout is declared Failed. */
    :: atomic { up(p) && may_act(p) && loaded[p] && silent(0) && fails < FAILS_MAX -> rfail[0] = 1; fails++;
            printf("EV P%d declares node 0 failed\n", p) }
    :: atomic { up(p) && may_act(p) && loaded[p] && silent(1) && fails < FAILS_MAX -> rfail[1] = 1; fails++;
            printf("EV P%d declares node 1 failed\n", p) }
    :: atomic { up(p) && may_act(p) && loaded[p] && silent(2) && fails < FAILS_MAX -> rfail[2] = 1; fails++;
            printf("EV P%d declares node 2 failed\n", p) }
    /* Leader: publish the next map (advance + write_state + adopt): one
     * change per map, shard 0 first; written to the state store by CAS on
     * the revision we hold (our installed map is the stored one), then
     * installed. */
    :: atomic { leads_loaded(p) && sm_ver < MAP_VERSIONS && sm_ver == mver[p] &&
                sm_term == mterm[p] && change(p, 0) -> publish(p, 0) }
    :: atomic { leads_loaded(p) && sm_ver < MAP_VERSIONS && sm_ver == mver[p] &&
                sm_term == mterm[p] && !change(p, 0) && change(p, 1) -> publish(p, 1) }
    /* Take over, policy 10: the stored map republished under our term (a
     * node serves only a map of the newest term it knows: may_serve). */
    :: atomic { leads_loaded(p) && sm_ver < MAP_VERSIONS && sm_ver == mver[p] &&
                sm_term == mterm[p] && sm_ver > 0 && sm_term < lead[p] && !change(p, 0) && !change(p, 1) ->
            sm_ver++; sm_term = lead[p];
            printf("EV P%d republishes the map as v%d under term %d\n", p, sm_ver, sm_term);
            install(p); reconcile(p) }
    /* Follower (and leader): read the stored map on a hint and adopt it if
     * newer (sink_map -> MSG_MAP_HINT -> load_stored_map -> adopt). */
    :: atomic { up(p) && sm_ver > mver[p] ->
            printf("EV P%d installs map v%d (shard 0: owner %d moving %d, shard 1: owner %d moving %d)\n",
                   p, sm_ver, sm_own[0], sm_mov[0], sm_own[1], sm_mov[1]);
            install(p); reconcile(p) }
    /* Keep-alive to the leader q and its acknowledgement (tick_heartbeat,
     * on_heartbeat/judge_request at the leader, keepalive_reply here). */
    :: atomic { ka_due(p) && leads_loaded(0) -> keepalive(p, 0) }
    :: atomic { ka_due(p) && leads_loaded(1) -> keepalive(p, 1) }
    :: atomic { ka_due(p) && leads_loaded(2) -> keepalive(p, 2) }
    :: atomic { ka_due(p) && leads_loaded(3) -> keepalive(p, 3) }
    /* reconcile when nothing else calls it: our wait for an earlier process
     * of our id is over (serve_after_ns). */
    :: atomic { up(p) && may_serve(p) && adm[p] && wt[p] == 0 && (wants(p, 0) || wants(p, 1)) ->
            reconcile(p) }
    /* Self-fencing by our own clock (tick_check -> fence): the right lapsed. */
#ifndef NO_SELF_FENCE
    :: atomic { up(p) && (held(p, 0) || held(p, 1)) && !right_ok(p) -> held(p, 0) = 0; held(p, 1) = 0;
            printf("EV P%d: serving right lapsed, fences itself\n", p) }
#endif
    od
}

/* A believed term is a real one: at most the highest term any holder acted
 * on (DESIGN 2.4: "a term far ahead of anything stored is never adopted"). */

proctype Env()
{
    byte p, k;
end:
    do
    /* Time passes: every countdown moves at once. Once calm, only when
     * nothing else can happen (maximal progress), so a live leader renews
     * and a live node keeps its right. */
    :: atomic { timeout && !calm && fault_now -> fault_now = 0 }  /* no fault this tick */
    :: atomic { timeout ->
            if :: lk_ttl > 0 -> lk_ttl-- :: else fi;
            if :: loss_wait > 0 -> loss_wait-- :: else fi;
            for (k : 0 .. N_PROC - 1) {
                if :: ldl[k] > 0 -> ldl[k]-- :: else fi;
                if :: right[k] > 0 -> right[k]-- :: else fi;
                if :: wt[k] > 0 -> wt[k]-- :: else fi
            }
            for (k : 0 .. N_NODE - 1) {
                if :: hbt[k] > 0 -> hbt[k]-- :: else fi
            }
            for (k : 0 .. N_SHARD - 1) {
                if :: ho[k] > 0 -> ho[k]-- :: else fi
            }
            printf("EV -- time passes --\n");
            if :: !calm -> fault_now = 1 :: else fi;
            k = 0
        }
    /* The store expires the key: at or after its TTL, never before. */
    :: atomic { lk_holder != NOPROC && lk_ttl == 0 -> lk_holder = NOPROC;
            printf("EV the lease key expires\n") }
    /* Faults, until calm. */
    /* Pause a process (it takes no step while time passes), or resume one. */
    :: atomic { fault_now && !calm && pauses < PAUSES -> fault_now = 0; pauses++;
            if :: p = 0 :: p = 1 :: p = 2 :: alive[3] -> p = 3 fi;
            paused[p] = 1;
            printf("EV P%d is paused\n", p);
            p = 0 }
    :: atomic { fault_now && (paused[0] || paused[1] || paused[2] || paused[3]) -> fault_now = 0;
            if :: paused[0] -> p = 0 :: paused[1] -> p = 1 :: paused[2] -> p = 2 :: paused[3] -> p = 3 fi;
            paused[p] = 0;
            printf("EV P%d resumes\n", p);
            p = 0 }
    :: atomic { fault_now && !calm && crashes < CRASHES -> fault_now = 0;
            crashes++;
            p = 1;                       /* node 1: shard 1's owner (node 0 has the duplicate) */
            if :: alive[p] -> boot(p, rinc[nid(p)] + 2) :: else fi;
            printf("EV P%d crashes and restarts with incarnation %d\n", p, myinc[p]);
            p = 0 }
    :: atomic { fault_now && !calm && twins < TWINS -> fault_now = 0; twins++; boot(3, rinc[0] + 2);
            printf("EV P3 starts: a second process of node 0, incarnation %d\n", myinc[3]) }
    :: atomic { fault_now && !calm && losses < LOSSES -> fault_now = 0;
            /* The lease bucket is deleted and re-created: revisions restart. */
            losses++; lk_holder = NOPROC; ctr = 0; loss_wait = TTL_S;
            printf("EV the lease bucket is lost and re-created\n") }
    :: atomic { fault_now && !calm && forgeries < FORGERIES -> fault_now = 0;
            /* A forged event claiming a term nobody holds (ctr + 1). */
            forgeries++;
            p = 2;
            k = (maxterm > ctr -> maxterm : ctr) + 1;
#ifdef NO_TERM_VERIFY
            note_term(p, k);
            printf("EV P%d receives a forged event of term %d and believes it\n", p, k);
            p = 0; k = 0
#else
            /* judge_claim: believed only if the record or the lease key has it */
            if :: k <= rec || (lk_holder != NOPROC && k <= lk_term) -> note_term(p, k) :: else fi;
            printf("EV P%d receives a forged event of term %d (believed: %d)\n", p, k, hi[p] == k);
            p = 0; k = 0
#endif
        }
#ifdef LIVENESS
    :: atomic { fault_now && !calm -> calm = 1; fault_now = 0;
            paused[0] = 0; paused[1] = 0; paused[2] = 0; paused[3] = 0;
            printf("EV faults stop\n") }
#endif
    od
}

init {
    atomic {
        byte k;
        for (k : 0 .. N_PROC - 1) {
            mown[k * N_SHARD] = NONE; mown[k * N_SHARD + 1] = NONE;
            mto[k * N_SHARD] = NONE; mto[k * N_SHARD + 1] = NONE
        }
        sm_own[0] = NONE; sm_own[1] = NONE; sm_to[0] = NONE; sm_to[1] = NONE;
        boot(0, 1); boot(1, 1); boot(2, 1);
        run Node(0); run Node(1); run Node(2); run Node(3);
        run Env()
    }
}
