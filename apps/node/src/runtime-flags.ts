/**
 * Flags every `cohort start` process runs Node with (the `cohort` binary's
 * shebang passes them; the dev cluster and the test and benchmark launchers
 * put them before the script).
 *
 * - `--max-semi-space-size=8`: V8 grows its young generation up to 128 MiB
 *   under a write load's allocation rate and keeps it; 8 MiB semi-spaces cap
 *   it at 16 MiB for a few more (cheap) scavenges, about 115 MB less resident
 *   memory per node. Measured with 1M keys (tools/scale-bench), against 16 MiB
 *   semi-spaces: 231-267 MB per node after the load instead of 266-301 MB,
 *   with puts, gets and the load rate within the machine's spread.
 *   Measured again on 2026-12-06 (tools/bench's README, thirty-fifth session):
 *   those scavenges are not cheap under load, where 8 MiB promotes what a
 *   request holds across its Raft round (a fifth of a pipelined `SET`'s
 *   bytes), and larger ones cost less CPU — two clusters alive at once,
 *   alternated runs at 10k keys: 32 MiB served 18% more `SET -P 16`, 12% more
 *   `SET` and 7% more gets than 8 MiB (16 MiB: 15% more `SET -P 16`; 64 MiB no
 *   more than 32) — but a 1M-key leader's RSS (tools/scale-bench, 300 MB
 *   target) was 337 MB at 16 MiB and 361 MB at 32 against 295 MB at 8 (351 MB
 *   with the worker threads' isolates held at 8 MiB, which
 *   `v8.setFlagsFromString` can do before they start). Kept at 8 for that
 *   target.
 * - `--heap-growing-percent=50`: after each full collection V8 lets the old
 *   generation grow to 1.5x what survived, instead of its default of up to 4x
 *   for a small heap. The write path promotes a steady stream of short-lived
 *   buffers and entries; with the default, a node loaded with 1M keys held
 *   ~150 MB of V8 heap for ~40 MB of live objects, plus ~100 MB of malloc'd
 *   backing stores of dead buffers waiting for that collection. Measured with
 *   1M keys (tools/scale-bench): resident memory per node ~400 MB -> ~270 MB,
 *   for about 10-15% more CPU during the load. Measured again on 2026-12-05
 *   (tools/bench's README, twenty-fifth session): without it a `SET -P 16`
 *   at 10k keys costs about a quarter less of the cluster's CPU, and a 1M-key
 *   leader's RSS is ~480 MB instead of ~320 (~380 MB at `=100`).
 *
 * Not here: `--use-largepages` (Node's code on 2 MiB pages), which would
 * slow every short-lived client command's start too: `cohort start` runs
 * itself again with it instead (see large-pages.ts). Nor
 * `--single-threaded-gc`: measured on 2026-12-07 (tools/bench's README,
 * thirty-sixth session), V8's collector without helper threads served 12%
 * more `SET -P 16` on this project's two-vCPU machine, but a 1M-key leader's
 * RSS was 461 MB against 286. Nor `--v8-pool-size=1` (one helper thread
 * instead of four; measured on 2026-12-07, thirty-seventh session): 3.8% more
 * `SET -P 16` (8 of 8 alternated pairs), 4.9% more `SET`, 2.9% more gets and
 * 10% more puts at 64 connections, but a 1M-key leader's RSS 305 MB against
 * 271 (its collector marks behind the load); `=2` measured between the two.
 * Nor 12 MiB semi-spaces: 1M-key nodes at 287-307 MB.
 */
export const NODE_RUNTIME_FLAGS: readonly string[] = ['--max-semi-space-size=8', '--heap-growing-percent=50'];

/**
 * What test harnesses start `cohort` processes with: {@link NODE_RUNTIME_FLAGS} and
 * `--use-largepages=off`, so `cohort start` does not run itself again onto huge pages (see
 * large-pages.ts): suites start hundreds of nodes, each 0.3-0.5 s sooner and ~40 MB smaller this way, and
 * what a node does does not depend on where Node's code lives. Benchmarks run nodes as they run by default.
 */
export const HARNESS_RUNTIME_FLAGS: readonly string[] = [...NODE_RUNTIME_FLAGS, '--use-largepages=off'];
