/** Unit tests of the frontend (jsdom): `jlpm test`. Only the HTTP boundary (src/request.ts's
 * listRuns, or `fetch` under the real requestAPI) and LabIcon are replaced; rendering runs for real. */
module.exports = {
  testEnvironment: '<rootDir>/jest.environment.js',
  roots: ['<rootDir>/src'],
  setupFiles: ['<rootDir>/jest.setup.js'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] }
};
