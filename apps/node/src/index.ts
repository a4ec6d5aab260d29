/** The cohort binary: composes the Cohort packages, serves RESP and HTTP/JSON, and runs local clusters. */
export const PACKAGE = '@cohort/node';
