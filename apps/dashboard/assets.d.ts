/** The directory `vite build` writes the dashboard into (index.html and assets/). */
export declare const assetsDir: string;
/** Whether the dashboard was built: its index.html exists. */
export declare function isBuilt(): boolean;
/** The command that builds it, for the page a node serves when it was not built. */
export declare const buildCommand: string;
