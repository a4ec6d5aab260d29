import { CohortError, ErrorCode } from '@cohort/core';

/** Joining failed: none of the seeds answered within the attempt budget. `seeds` lists what was tried. */
export class NoSeedsReachableError extends CohortError {
  override readonly name = 'NoSeedsReachableError';
  readonly code = ErrorCode.Unavailable;
  constructor(
    readonly seeds: readonly string[],
    readonly attempts: number,
  ) {
    super(
      `no seed answered after ${attempts} attempts (tried: ${seeds.join(', ') || 'none'}); ` +
        'check the seed addresses and that at least one seed node is running',
    );
  }
}
