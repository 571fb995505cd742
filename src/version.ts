declare const __SVCMESH_VERSION__: string | undefined;

/** Replaced at build time; tests that import sources directly see the development marker. */
export const VERSION = typeof __SVCMESH_VERSION__ === 'string' ? __SVCMESH_VERSION__ : '0.0.0-dev';
