// jsdom has no Fetch API. Expose Node's Request/Response/Headers so that src/request.ts runs through
// the real ServerConnection.makeRequest; `fetch` itself (the HTTP boundary) must be mocked by a test.
const { TestEnvironment } = require('jest-environment-jsdom');

module.exports = class FetchJSDOMEnvironment extends TestEnvironment {
  async setup() {
    await super.setup();
    this.global.Request = Request;
    this.global.Response = Response;
    this.global.Headers = Headers;
    // streamed bodies (the Pipeline panel's server-sent events) are read with these
    this.global.ReadableStream = ReadableStream;
    this.global.TextEncoder = TextEncoder;
    this.global.TextDecoder = TextDecoder;
    this.global.fetch = () => Promise.reject(new Error('fetch is not mocked in this test'));
  }
};
