# Tests of the deterministic simulator (tools/aether-sim.c; docs/testing.md,
# "Deterministic simulation"), included by tools/CMakeLists.txt. Labels:
# "sim" for all; "unit" also for the short ones, so that the ASan+UBSan build
# of tools/test runs the simulator too. The 500-seed soak is a step of
# tools/test, not a ctest entry.

# Same seed, same trace, byte for byte (and another seed, another trace).
add_test(NAME sim.determinism
         COMMAND ${CMAKE_SOURCE_DIR}/tests/sim/determinism.sh $<TARGET_FILE:aether-sim>)
set_tests_properties(sim.determinism PROPERTIES LABELS "sim;unit" TIMEOUT 300)

# A bad option is a usage error (exit 2): the test passes when the run fails.
add_test(NAME sim.bad_option COMMAND aether-sim --no-such-option)
set_tests_properties(sim.bad_option PROPERTIES WILL_FAIL TRUE TIMEOUT 10)
# Values that used to slip through (NaN durations, negative seeds): exit 2.
add_test(NAME sim.bad_values
         COMMAND ${CMAKE_SOURCE_DIR}/tests/sim/bad_values.sh $<TARGET_FILE:aether-sim>)
set_tests_properties(sim.bad_values PROPERTIES LABELS "sim;unit" TIMEOUT 60)

# Regression seeds: each one found a bug in the domain code (docs/testing.md
# lists them with the fix). They must keep passing.
#   name                  arguments
set(AETHER_SIM_REGRESSIONS
  "oneway_ack|--seed 7 --nodes 5 --duration 30 --all-faults"
  "drain_lost|--seed 1 --nodes 5 --duration 30 --all-faults"
  "store_first|--seed 30 --nodes 5 --duration 30 --all-faults"
  "isolated_leader|--seed 15 --nodes 5 --duration 30 --all-faults"
  "isolated_leader2|--seed 38 --nodes 5 --duration 30 --all-faults"
  "stale_handoff_target|--soak --seed 6 --duration 20"
  "handoff_diverged|--soak --seed 65 --duration 20"
  "keepalive_slots|--soak --seed 191 --duration 20"
  "publish_oracle|--soak --seed 364 --duration 20"
  "topology_drift|--soak --seed 2634 --duration 20"
  "draining_target|--soak --seed 2777 --duration 20"
  "self_admission|--soak --seed 2866 --duration 20"
  "draining_target2|--soak --seed 2905 --duration 20"
  "all_draining|--soak --seed 789 --duration 20"
  "all_draining2|--soak --seed 1070 --duration 20"
  "stale_release|--soak --seed 1083 --duration 20"
  "all_draining3|--soak --seed 1916 --duration 20"
  "no_healthy_map|--soak --seed 5669 --duration 20"
  "rebalance_in_doubt|--soak --seed 7899 --duration 20"
  "i5_store_stall|--soak --seed 7527 --duration 20"
  "i5_paused_leader|--soak --seed 7905 --duration 20"
  "dead_handoff_target|--soak --seed 40 --duration 60"
  "campaign_while_isolated|--soak --seed 2612 --duration 240"
  "stale_map_after_ack|--soak --seed 7196 --duration 240"
  "late_topology_write|--soak --seed 3965 --duration 240"
  "drained_on_stale_map|--soak --seed 281 --duration 240"
  "twin|--seed 3 --nodes 5 --duration 20 --faults all,twin --fault-rate 2"
  "twin_same_claim|--seed 119 --nodes 8 --duration 20 --faults all,twin --fault-rate 4 --replication 3"
  "twin_leads_first|--seed 303 --nodes 6 --duration 20 --faults all,twin --fault-rate 4"
  "twin_behind_leader|--seed 78 --nodes 3 --duration 20 --faults all,twin --fault-rate 3"
  "forgotten_drained|--soak --seed 919 --duration 20"
  "lease_bucket_lost|--seed 36 --nodes 5 --duration 30 --faults all,kv-loss --fault-rate 2"
  "state_bucket_lost_versions|--seed 22 --nodes 5 --duration 30 --faults all,kv-loss --fault-rate 2"
  "state_bucket_lost_versions2|--seed 84 --nodes 5 --duration 30 --faults all,kv-loss --fault-rate 2"
  "forged_present_term|--seed 11 --nodes 6 --duration 10 --faults forge,crash,loss,dup --replication 2"
  # Issue 13 item 2: before terms were checked against the lease store, a
  # forged LeaderElected of T+1000 or 2^63-1 was believed: both fail with
  # "liveness: after heal: not settled after 30000 ms: shard 0 (1): primary
  # n0 (n1) does not serve it".
  "forged_far_term|--seed 1 --duration 20 --faults forge-term"
  "forged_far_term2|--seed 11 --nodes 6 --duration 10 --faults forge-term,crash,loss,dup --replication 2"
  # kv-loss must not lose the state bucket while a re-created lease bucket
  # holds no term yet (that is losing both: terms repeat, "I1: term 25 has
  # two leaders"; a simulator modelling error, the product documents it).
  "state_loss_after_unhealed_lease_loss|--soak --seed 100117 --duration 120 --extra-faults misfit,twin,kv-loss,forge"
  # A leader that finds no stored map (state bucket lost) takes over from
  # nothing: no map before every earlier serving right lapsed (100162), and
  # a misfit newcomer that wins then refuses itself when a member asks to
  # join (100048, 100122, 100126). Issue 12 items 1 and 5.
  "takeover_from_nothing|--soak --seed 100162 --duration 120 --extra-faults misfit,twin,kv-loss,forge"
  "misfit_leads_after_state_loss|--soak --seed 100048 --duration 120 --extra-faults misfit,twin,kv-loss,forge"
  "misfit_leads_after_state_loss2|--soak --seed 100122 --duration 120 --extra-faults misfit,twin,kv-loss,forge"
  "misfit_leads_after_state_loss3|--soak --seed 100126 --duration 120 --extra-faults misfit,twin,kv-loss,forge"
  # Both buckets lost (issue 12 item 5, a new generation: actors/lease.h).
  # Before generations: 2 "I1: term 1 has two leaders, n0 and n4" (a
  # restarted node reused term 1), 34 "I1: n1 and n5 both act as leader";
  # with them but before step 2c: 21 "I1: n0 and n2 both act as leader";
  # 34 before the map reset: an old generation's map v2097153 served.
  "generation_term_reused|--seed 2 --nodes 5 --duration 30 --faults all,kv-loss-both --fault-rate 3"
  "generation_birth_waits|--seed 21 --nodes 5 --duration 30 --faults all,kv-loss-both --fault-rate 3"
  "generation_old_map|--seed 34 --nodes 5 --duration 30 --faults all,kv-loss-both --fault-rate 3"
  "generation_term_reused2|--seed 18 --nodes 5 --duration 30 --faults all,kv-loss-both --fault-rate 3"
  # Found by the opt-in mix with kv-loss-both (actors/lease.h): candidates
  # that could not read the state store released their keys (100186), a
  # floor taken for the record as an own stopped term (100133), a wait of
  # an earlier lease-bucket loss counted at the next (100197); each "I1:
  # ... both act as leader" before its fix.
  "generation_outage_keeps_keys|--soak --seed 100186 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge"
  "generation_own_stopped_floor|--soak --seed 100133 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge"
  "generation_stale_wait|--soak --seed 100197 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge"
  # A conditional write names only a revision, and revisions repeat across
  # lives of the lease bucket: n7, paused through the loss of both buckets,
  # resigned by a delete naming its revision 33, which was n5's key of term
  # 33 in the new bucket; n7 then led term 35 beside n5 ("I1: n5 and n7
  # both act as leader" before lease.c checked the value first).
  "lease_write_aba|--soak --seed 100033 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge"
  # A leader of a new generation, still waiting to publish its first map,
  # wrote back the map it held (the old generation's, term 51) when the
  # state bucket was lost again; n13 then took over from it ("n13 installed
  # map v5243032 of term 49 after one of term 51" before rewrite_lost_map
  # skipped a map of an earlier generation).
  "generation_old_map_written_back|--soak --seed 100015 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge"
  # The cluster actor kept the old generation's term (310) after a new one
  # began: every leader of the new one (terms 2, 7, ...) had its own
  # keep-alives refused as stale and resigned cut off a failure_timeout
  # later ("I5: leader n7 is failed" before follow_generation).
  "generation_forgets_old_term|--soak --seed 100056 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge"
  # kv-aba: after a loss of both buckets, the lost generation's leader's
  # map lands in the new state bucket by compare-and-set (revisions restart:
  # an ABA), numbered above the new generation's. Without the stored "gen"
  # checks (member_state_generation_check and the writer's replacement of a
  # foreign value) each fails with "n15 installed map v3146730 of term 3
  # after one of term 4" (100001; 100008: v34604010, terms 33/34).
  "generation_value_aba|--soak --seed 100001 --duration 20 --extra-faults kv-aba"
  "generation_value_aba2|--soak --seed 100008 --duration 20 --extra-faults kv-aba"
  # The same write with nothing to change after it: the leader (n7) had
  # taken over from the stored map and wrote none, so n0, cut off meanwhile,
  # refused the stored one for 30 s ("liveness: after a leader change: not
  # settled ... primary n0 does not serve it") before a leader checked, once
  # per lease ttl, that the stored map is still its own (check_foreign_map).
  "generation_value_aba_idle|--soak --seed 100155 --duration 20 --extra-faults kv-aba"
  "generation_value_aba_idle2|--soak --seed 100168 --duration 20 --extra-faults kv-aba"
  # A leader that learnt of a new generation reported its old term's loss
  # after moving to it: that term raised the new generation's stamp, and as
  # a leader there its every event (its LeaderElected first) was dropped as
  # stale; it led publishing no map ("liveness: after heal: not settled")
  # until follow_generation reported the loss before the move.
  "generation_loss_reported_first|--soak --seed 100336 --duration 20 --extra-faults kv-loss-both"
  # Quorum of configuration (docs/cluster.md, "Admission"): after a store
  # loss with no member holding a map, a misfit that won the lease published
  # its own shape ("x17 published map v2097153 with 256 shards and
  # replication 3 (the cluster: 256, 2)" and the like) before a leader with
  # no stored map counted the shapes of the live nodes it hears. 100093:
  # the first misfit refuses itself, a second one leads while a partition
  # keeps the members from it, then hears one member (a tie), then more.
  "misfit_quorum|--soak --seed 100001 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge"
  "misfit_quorum2|--soak --seed 100136 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge"
  "misfit_quorum3|--soak --seed 100170 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge"
  "misfit_quorum_partitioned|--soak --seed 100093 --duration 120 --extra-faults misfit,twin,kv-loss,forge"
  "misfit_quorum4|--soak --seed 100118 --duration 120 --extra-faults misfit,twin,kv-loss,forge"
  # A misfit leader admitted another misfit of its shape, then refused
  # itself; the next (correct) leader's first map named that member ("n15
  # published map v47185921 naming misfit x14") before members of another
  # shape were failed first (step 2c).
  "misfit_quorum_admitted_kind|--soak --seed 100082 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge"
  "misfit_quorum_admitted_kind2|--soak --seed 100109 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge"
  # Two misfits of one shape heard while a partition hid the members: the
  # members recorded in the stored topology count as unknown ("x26
  # published map v62914561 with 256 shards and replication 2 (the
  # cluster: 128, 2)" before).
  "misfit_quorum_unknown_members|--soak --seed 100174 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge"
  # The leader's handoff-timeout check used a `now` read before the
  # write-back and the rebalance of the same tick; a slow store call moved
  # the clock past it, and the 64 handoffs that rebalance began wrapped
  # around to "timed out" and were decreed at once ("n8 acquired shard 16
  # (map v2097199) while n12 still serves it").
  "handoff_decreed_as_it_began|--soak --seed 100127 --duration 120 --extra-faults misfit,twin,kv-loss,forge"
  # Drained nodes leaving one by one engage the brake at each leave (DESIGN:
  # "fail or leave"), each for a window: the liveness bound counts the time
  # the brake holds apart (await_settled). Failed "n5 is draining, should be
  # left" after 30 s before (also 8961, 9551).
  "drain_chain_under_brake|--soak --seed 7695 --duration 20"
  # The adversary (issue 13 item 6): a forged MarkNodeFailed of a live node,
  # not forced, was granted after two missed heartbeats (a loss burst) and
  # the leader gave its shards away while it still served them. Failed
  # "single ownership: n13 acquired shard 11 (map v2097188) while n14 still
  # serves it" at 17.08 s before (also seed 300006). 20 s: the first 17 s
  # are the same run at any duration, and later a forged LeaderElected of a
  # present term (docs/testing.md, class S) ends it another way.
  "adversary_fail_request|--soak --seed 300066 --duration 20 --extra-faults adversary --adversary-without ahead-terms,join-incarnations"
  # A forged LeaveCluster drained a live node (without a cluster secret it
  # is an operator's drain): aether-node exits once Left, the simulator
  # kept the process and wanted it Active. Failed "n2 is unknown, should
  # be active" before the simulator modelled the exit (not a product fault).
  "adversary_drained_from_outside|--soak --seed 300003 --duration 120 --extra-faults adversary --adversary-without ahead-terms,join-incarnations"
  # A forged LeaseRenewed announcing map v2^63-1 reached n3 while it was cut
  # off from the state store; unrefuted, it counted (the safe side) and
  # stayed counted: n3 served nothing for good. Failed "shard 128: primary
  # n3 does not serve it" 30 s after heal before; the announcement is now
  # re-checked at each LeaseRenewed until the store answers.
  "adversary_announce_refuted|--soak --seed 300040 --duration 120 --extra-faults adversary --adversary-without ahead-terms,join-incarnations"
  # Class S (docs/testing.md): a node that knew term T but had bound it to
  # no speaker took the first emitter it heard for T's leader. 300013: the
  # joiner n6 believed a forged LeaderElected of term 2 in n0's name
  # ("I1: term 2 ... has two leaders, n5 and n0" at 6.97 s before); 300005:
  # n15, back from a pause, had a forged LeaderElected of term 130 from
  # "ghost" confirmed by a lease key not yet renewed (no term in its value:
  # "two leaders, n22 and ghost" at 39.69 s before). The lease store now
  # names a term's speaker before anyone is bound to it (judge_claim).
  "adversary_speaker_unbound|--soak --seed 300013 --duration 20 --extra-faults adversary --adversary-without none"
  "adversary_speaker_unrenewed|--soak --seed 300005 --duration 45 --extra-faults adversary --adversary-without none"
  # Class L: forged LeaveCluster requests drained every node; the last one,
  # Draining, lost its lease once and never campaigned again ("liveness:
  # after heal: not settled after 30000 ms: no leader" before). The last
  # Active node's drain is refused now, and a Draining node with no Active
  # one left campaigns.
  "adversary_last_drain|--soak --seed 300080 --duration 120 --extra-faults adversary --adversary-without none"
  "left_process_silent|--soak --seed 9085 --duration 20"
  # n10's 20th run started on a clock stepped back 1.9 s, in the same wall
  # millisecond as its 19th (admitted, Active): both claimed incarnation
  # 1767225841591. The new run took the equal record for an earlier one's
  # only when strictly above its claim, so it never claimed above it; its
  # keep-alives were refused ESTALE and its heartbeats kept the dead run's
  # record Active, primaries unserved ("not settled after 30000 ms: shard
  # 2: primary n10 does not serve it" at 275.6 s). A record of another
  # process at or above the claim is now claimed above before admission.
  "incarnation_equal_to_dead_run|--soak --seed 231 --duration 240"
  "generation_note_of_ended_term|--soak --seed 100168 --duration 120 --extra-faults kv-aba")
foreach(entry ${AETHER_SIM_REGRESSIONS})
  string(REPLACE "|" ";" parts "${entry}")
  list(GET parts 0 name)
  list(GET parts 1 args)
  separate_arguments(args UNIX_COMMAND "${args}")
  add_test(NAME sim.seed_${name} COMMAND aether-sim ${args})
  set_tests_properties(sim.seed_${name} PROPERTIES LABELS "sim" TIMEOUT 300)
endforeach()

# Opt-in fault kinds (--extra-faults): misfit joiners (another shard_count
# or replication) beside the classic mix must be refused, never serve and
# never be named by a map (issue 12 item 1).
add_test(NAME sim.misfit_joiners
         COMMAND aether-sim --seed 2 --nodes 5 --duration 20 --all-faults --extra-faults misfit)
set_tests_properties(sim.misfit_joiners PROPERTIES LABELS "sim" TIMEOUT 300)

# The adversary (issue 13 item 6; docs/testing.md, "The adversary") beside
# the classic mix, without the two families other changes defend against
# (terms ahead, joins naming members): forged, replayed and malformed
# messages of every kind must change nothing the oracle checks.
add_test(NAME sim.adversary
         COMMAND aether-sim --seed 5 --nodes 6 --duration 20 --all-faults --replication 2
                 --extra-faults adversary --adversary-without ahead-terms,join-incarnations)
set_tests_properties(sim.adversary PROPERTIES LABELS "sim;unit" TIMEOUT 300)

# Under ASan too (label unit): a short default-mix run.
add_test(NAME sim.all_faults_short COMMAND aether-sim --seed 11 --nodes 6 --duration 10 --all-faults --replication 2)
set_tests_properties(sim.all_faults_short PROPERTIES LABELS "sim;unit" TIMEOUT 300)

# Scale: 200 nodes x 16384 shards with faults (the 1000 x 65536 run is in
# docs/testing.md; it takes minutes).
add_test(NAME sim.scale_200 COMMAND aether-sim --seed 5 --nodes 200 --shards 16384 --duration 5
         --faults crash,pause,partition,loss,delay --fault-rate 2 --max-handoffs 4096 --no-i4)
set_tests_properties(sim.scale_200 PROPERTIES LABELS "sim" TIMEOUT 600)
