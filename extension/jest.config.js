/** Unit tests of the frontend (jsdom): `jlpm test`. Only the HTTP boundary (src/request.ts) and
 * LabIcon are replaced; rendering runs for real. */
module.exports = {
  testEnvironment: 'jsdom',
  roots: ['<rootDir>/src'],
  setupFiles: ['<rootDir>/jest.setup.js'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] }
};
