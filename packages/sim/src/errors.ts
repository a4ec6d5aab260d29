/** Where in a run something happened: enough to replay it (`pnpm sim --seed N`) and find the spot. */
export interface RunPosition {
  seed: number;
  /** Events executed so far. */
  step: number;
  /** Simulated milliseconds. */
  time: number;
  /** The command that replays the run. @default `pnpm sim --seed <seed>` */
  replay?: string;
}

/** The command that replays a run at `at`. */
export function replayCommand(at: { seed: number; replay?: string }): string {
  return at.replay ?? `pnpm sim --seed ${at.seed}`;
}

/** A safety property was broken; the message names the property, the nodes and how to replay. */
export class InvariantViolationError extends Error {
  override readonly name = 'InvariantViolationError';
  constructor(
    readonly property: string,
    readonly detail: string,
    readonly at: RunPosition,
  ) {
    super(
      `${property} violated at step ${at.step} (t=${at.time}ms) of seed ${at.seed}: ${detail}; replay with: ${replayCommand(at)}`,
    );
  }
}

/** A client history of the run has no linearization. */
export class LinearizabilityViolationError extends Error {
  override readonly name = 'LinearizabilityViolationError';
  constructor(
    readonly seed: number,
    readonly detail: string,
    /** The operations (of one key) that could not be linearized. */
    readonly operations: unknown[] = [],
    replay?: string,
  ) {
    super(
      `history of seed ${seed} is not linearizable: ${detail}; replay with: ${replayCommand(replay === undefined ? { seed } : { seed, replay })}`,
    );
  }
}

/** A run stopped on an error that is not a property violation (a host that failed, a bug); names how to replay. */
export class RunFailedError extends Error {
  override readonly name = 'RunFailedError';
  constructor(
    readonly at: RunPosition,
    cause: unknown,
  ) {
    super(
      `run failed at step ${at.step} (t=${at.time}ms) of seed ${at.seed}: ${cause instanceof Error ? cause.message : String(cause)}; replay with: ${replayCommand(at)}`,
      { cause },
    );
  }
}
