/**
 * Flags every `cohort start` process runs Node with (the `cohort` binary's
 * shebang passes them; the dev cluster and the test and benchmark launchers
 * put them before the script). V8 grows its young generation up to 128 MiB
 * under a write load's allocation rate and keeps it; 16 MiB semi-spaces cap it
 * at 32 MiB for a few more (cheap) scavenges, about 100 MB less resident memory
 * per node.
 */
export const NODE_RUNTIME_FLAGS: readonly string[] = ['--max-semi-space-size=16'];
