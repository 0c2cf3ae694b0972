/*
 * tests/model/aether.pml: a Promela model of Aether's leadership, fencing
 * and handoff protocol (DESIGN 2.4 and "Shard handoff"), checked by SPIN
 * (tools/model-check). docs/testing.md, "Model checking", maps every step
 * below to the C function that implements it.
 *
 * Actors: four processes of three node ids (P0, P1, P2 are nodes 0..2; P3 is
 * a second process of node 0 - a duplicate, started once, while P0 may
 * still run) and an environment (time, TTL expiry, faults). Each numbered
 * step is one atomic transition; a process that takes no step while time
 * passes is paused (SIGSTOP, a slow machine), which SPIN explores for free.
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
 * of the lease bucket in all, MAP_VERSIONS map versions, one crash, one
 * duplicate, one loss of the lease bucket, one forged message.
 */

#define N_PROC   4          /* P0..P2 = nodes 0..2, P3 = a duplicate of node 0 */
#define N_NODE   3
#define N_SHARD  2
#define NONE     3          /* no node */
#define NOPROC   4          /* no process (the lease key is absent) */

#ifndef BUCKET_REVS
#define BUCKET_REVS 5       /* revisions the lease bucket hands out, in all */
#endif
#ifndef MAP_VERSIONS
#define MAP_VERSIONS 6      /* map versions the leaders publish, in all */
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
byte crashes, twins, losses, forgeries;

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
ltl progress { [] (calm -> <> (served(0) && served(1))) }

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

/* The leader's next map from the one it holds (member_assign.c, advance):
 * one change per map. Shard s: unassigned or owner gone -> direct;
 * stable on a healthy owner that is not the target -> Releasing(to);
 * Releasing -> Stable(to) on an acknowledgement or by decree after the
 * handoff timeout; a target that went away cancels the move. */
byte nown, nto; bit nmov; byte ns;

proctype Node(byte p)
{
    byte q, s, t, k;
end:
    do
    /* 1. Campaign: create the lease key (aether_lease_acquire step 1). */
    :: atomic { alive[p] && !sup[p] && lead[p] == 0 && est[p] == 0 &&
                lk_holder == NOPROC && ctr < BUCKET_REVS ->
            ctr++; lk_holder = p; lk_rev = ctr; lk_term = 0; lk_ttl = TTL_S;
            myrev[p] = ctr; ldl[p] = TTL_L; est[p] = 1;
            printf("EV P%d creates the lease key at revision %d\n", p, ctr) }
    /* 2-6. Establish the term: read the record R; our revision <= R means
     * the lease bucket was re-created: wait a ttl (2b), then advance the
     * key past R (3); CAS the record to our revision (4); verify the key is
     * still ours (5); act (6). */
    :: atomic { alive[p] && est[p] == 1 ->
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
                printf("EV P%d records term %d and leads\n", p, lead[p])
            fi }
    /* Renew (aether_lease_renew): CAS on our revision and nonce. */
    :: atomic { alive[p] && may_act(p) && ldl[p] < TTL_L ->
            if
            :: lk_holder == p && lk_rev == myrev[p] ->
                ldl[p] = TTL_L; lk_ttl = TTL_S; lk_term = lead[p];
                printf("EV P%d renews term %d\n", p, lead[p])
            :: else -> lead[p] = 0;              /* ECONFLICT: lost */
                printf("EV P%d: renewal refused, stops leading\n", p)
            fi }
    /* Lose by the clock (member_may_lead false; lose_term). */
    :: atomic { alive[p] && lead[p] != 0 && ldl[p] == 0 -> lead[p] = 0;
            printf("EV P%d: lease deadline passed, stops leading\n", p) }
    /* Resign (aether_lease_resign): delete our own key only. */
    :: atomic { alive[p] && !calm && may_act(p) ->
            if :: lk_holder == p && lk_rev == myrev[p] -> lk_holder = NOPROC :: else fi;
            lead[p] = 0;
            printf("EV P%d resigns\n", p) }
    /* Take over (policy 10, takeover_load): read the stored map. */
    :: atomic { alive[p] && may_act(p) && !loaded[p] ->
            if :: sm_ver > mver[p] -> install(p); release_unwanted(p) :: else fi;
            loaded[p] = 1;
            printf("EV P%d takes over with map v%d\n", p, mver[p]) }
    /* Leader: the failure check (tick_failcheck, policy 4): a healthy node
     * silent for the failure timeout is declared Failed. */
    :: atomic { alive[p] && may_act(p) && loaded[p] && silent(0) -> rfail[0] = 1;
            printf("EV P%d declares node 0 failed\n", p) }
    :: atomic { alive[p] && may_act(p) && loaded[p] && silent(1) -> rfail[1] = 1;
            printf("EV P%d declares node 1 failed\n", p) }
    :: atomic { alive[p] && may_act(p) && loaded[p] && silent(2) -> rfail[2] = 1;
            printf("EV P%d declares node 2 failed\n", p) }
    /* Leader: publish the next map (advance + write_state + adopt): the
     * map is written to the state store by CAS on the revision we hold
     * (our installed map is the stored one), then installed. */
    :: atomic { alive[p] && may_act(p) && loaded[p] && sm_ver < MAP_VERSIONS &&
                sm_ver == mver[p] && sm_term == mterm[p] ->
            ns = NONE; s = 0;
            do
            :: s < N_SHARD && ns == NONE ->
                nown = mown[p * N_SHARD + s]; nmov = mmov[p * N_SHARD + s]; nto = mto[p * N_SHARD + s];
                t = target(s);
                if
                :: !nmov && (nown == NONE || !healthy(nown)) && t != NONE ->
                    nown = t; ns = s
                :: !nmov && nown != NONE && healthy(nown) && t != NONE && t != nown ->
                    nmov = 1; nto = t; ns = s
                :: nmov && (!healthy(nown) || acked[s] || ho[s] == 0) && healthy(nto) ->
                    nown = nto; nmov = 0; nto = NONE; ns = s       /* ack, decree, or gone */
                :: nmov && !healthy(nto) ->
                    nmov = 0; nto = NONE; ns = s;                  /* cancelled */
                    if :: !healthy(nown) -> nown = t :: else fi
                :: else -> skip
                fi;
                if
                :: ns == NONE -> s++
                :: else
                fi
            :: s >= N_SHARD || ns != NONE -> break
            od;
            ns != NONE;                          /* nothing to change: no map */
            sm_ver++; sm_term = lead[p];
            sm_own[0] = mown[p * N_SHARD]; sm_own[1] = mown[p * N_SHARD + 1];
            sm_mov[0] = mmov[p * N_SHARD]; sm_mov[1] = mmov[p * N_SHARD + 1];
            sm_to[0] = mto[p * N_SHARD]; sm_to[1] = mto[p * N_SHARD + 1];
            sm_own[ns] = nown; sm_mov[ns] = nmov; sm_to[ns] = nto;
            if
            :: nmov && !mmov[p * N_SHARD + ns] -> ho[ns] = HANDOFF_T; mvv[ns] = sm_ver; acked[ns] = 0
            :: else
            fi;
            install(p); release_unwanted(p);
            printf("EV P%d publishes map v%d term %d: shard %d owner %d moving %d to %d\n", p, sm_ver, sm_term, ns, nown, nmov, nto) }
    /* Follower (and leader): read the stored map on a hint and adopt it if
     * newer (sink_map -> MSG_MAP_HINT -> load_stored_map -> adopt). */
    :: atomic { alive[p] && sm_ver > mver[p] -> install(p); release_unwanted(p);
            printf("EV P%d installs map v%d (shard 0: %d %d, shard 1: %d %d)\n", p, mver[p],
                   sm_own[0], sm_mov[0], sm_own[1], sm_mov[1]) }
    /* Keep-alive to the leader q and its acknowledgement (tick_heartbeat,
     * on_heartbeat/judge_request at the leader, keepalive_reply here). */
    :: atomic { alive[p] && !sup[p] &&
                (right[p] < FENCE || hbt[nid(p)] < FAIL_T || rinc[nid(p)] != myinc[p] || rfail[nid(p)]) ->
            q = 0;
            do
            :: q < N_PROC && !(alive[q] && may_act(q) && loaded[q]) -> q++
            :: q < N_PROC && alive[q] && may_act(q) && loaded[q] -> break
            :: q >= N_PROC -> break
            od;
            q < N_PROC;                          /* a leader is there */
            k = nid(p);
#ifndef NO_INCARNATION_RULE
            if
            :: rinc[k] > myinc[p] -> sup[p] = 1; /* ESUPERSEDED: stop at once */
                printf("EV P%d is refused as superseded (incarnation %d < %d)\n", p, myinc[p], rinc[k])
            :: else
            fi;
#endif
            if
            :: sup[p] -> skip
            :: else ->
                if
                :: rinc[k] < myinc[p] || rfail[k] ->     /* admission (a new process, or a rejoin) */
                    if :: rfail[k] && rinc[k] >= myinc[p] -> myinc[p] = rinc[k] + 1 :: else fi;
                    rinc[k] = myinc[p]; rfail[k] = 0;
                    if :: !adm[p] -> adm[p] = 1; wt[p] = FAIL_T :: else fi
                :: else
                fi;
                hbt[k] = FAIL_T; right[p] = FENCE;
                if :: mver[q] > ann[p] -> ann[p] = mver[q] :: else fi;
                printf("EV P%d keep-alive acknowledged by leader P%d (incarnation %d, map v%d)\n", p, q, myinc[p], mver[q])
            fi }
    /* Hear the leader's LeaderElected / LeaseRenewed (term, announced map
     * version): the term is noted (member_note_term) only if not older. */
    :: atomic { alive[p] ->
            q = 0;
            do
            :: q < N_PROC && !(alive[q] && may_act(q) && (lead[q] > hi[p] || mver[q] > ann[p])) -> q++
            :: q < N_PROC && alive[q] && may_act(q) && (lead[q] > hi[p] || mver[q] > ann[p]) -> break
            :: q >= N_PROC -> break
            od;
            q < N_PROC;
            note_term(p, lead[q]);
            if :: lead[q] >= hi[p] && mver[q] > ann[p] -> ann[p] = mver[q] :: else fi;
            printf("EV P%d hears leader P%d: term %d, map v%d\n", p, q, lead[q], mver[q]) }
    /* reconcile's acquire half: a stable primary shard of ours, from a map
     * that is current, while we may serve. */
    :: atomic { alive[p] && may_serve(p) && adm[p] && wt[p] == 0 ->
            s = 0;
            do
            :: s < N_SHARD && !held(p, s) && mown[p * N_SHARD + s] == nid(p) &&
               !mmov[p * N_SHARD + s] -> break
            :: s < N_SHARD && !(!held(p, s) && mown[p * N_SHARD + s] == nid(p) &&
               !mmov[p * N_SHARD + s]) -> s++
            :: s >= N_SHARD -> break
            od;
            s < N_SHARD;
            held(p, s) = 1;
            printf("EV P%d acquires shard %d (map v%d)\n", p, s, mver[p]) }
    /* Self-fencing by our own clock (tick_check -> fence): the right lapsed. */
#ifndef NO_SELF_FENCE
    :: atomic { alive[p] && (held(p, 0) || held(p, 1)) && !right_ok(p) -> held(p, 0) = 0; held(p, 1) = 0;
            printf("EV P%d: serving right lapsed, fences itself\n", p) }
#endif
    /* Acknowledge a shard leaving us (send_ack -> ShardReleased), after
     * releasing it; the leader takes it only for the present handoff. */
    :: atomic { alive[p] && !sup[p] ->
            s = 0;
            do
            :: s < N_SHARD && mmov[p * N_SHARD + s] && mown[p * N_SHARD + s] == nid(p) &&
               !held(p, s) && mver[p] >= mvv[s] && sm_mov[s] && !acked[s] -> break
            :: s < N_SHARD && !(mmov[p * N_SHARD + s] && mown[p * N_SHARD + s] == nid(p) &&
               !held(p, s) && mver[p] >= mvv[s] && sm_mov[s] && !acked[s]) -> s++
            :: s >= N_SHARD -> break
            od;
            s < N_SHARD;
            acked[s] = 1;
            printf("EV P%d acknowledges the release of shard %d\n", p, s) }
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
    :: atomic { (!calm || timeout) ->
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
            printf("EV -- time passes --\n")
        }
    /* The store expires the key: at or after its TTL, never before. */
    :: atomic { lk_holder != NOPROC && lk_ttl == 0 -> lk_holder = NOPROC;
            printf("EV the lease key expires\n") }
    /* Faults, until calm. */
    :: atomic { !calm && crashes < 1 ->
            crashes++;
            if
            :: p = 0 :: p = 1 :: p = 2
            fi;
            if :: alive[p] -> boot(p, rinc[nid(p)] + 2) :: else fi;
            printf("EV P%d crashes and restarts with incarnation %d\n", p, myinc[p]) }
    :: atomic { !calm && twins < 1 -> twins++; boot(3, rinc[0] + 2);
            printf("EV P3 starts: a second process of node 0, incarnation %d\n", myinc[3]) }
    :: atomic { !calm && losses < 1 ->
            /* The lease bucket is deleted and re-created: revisions restart. */
            losses++; lk_holder = NOPROC; ctr = 0; loss_wait = TTL_S;
            printf("EV the lease bucket is lost and re-created\n") }
    :: atomic { !calm && forgeries < 1 ->
            /* A forged event claiming a term nobody holds (ctr + 1). */
            forgeries++;
            if :: p = 0 :: p = 1 :: p = 2
            fi;
            k = (maxterm > ctr -> maxterm : ctr) + 1;
#ifdef NO_TERM_VERIFY
            note_term(p, k);
            printf("EV P%d receives a forged event of term %d and believes it\n", p, k)
#else
            /* judge_claim: believed only if the record or the lease key has it */
            if :: k <= rec || (lk_holder != NOPROC && k <= lk_term) -> note_term(p, k) :: else fi;
            printf("EV P%d receives a forged event of term %d (believed: %d)\n", p, k, hi[p] == k)
#endif
        }
    :: atomic { !calm -> calm = 1; printf("EV faults stop\n") }
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
