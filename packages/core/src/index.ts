/** Ids and value types, typed errors, config with validation and defaults, the wire codec, and the Clock, Random, Transport and Logger interfaces every Cohort host needs. */
export const PACKAGE = '@cohort/core';
