// Root hook: stop the shared API server once, after every test file ran.
import { stopKubeEnv } from './support/cluster.js';

after(async function () {
  this.timeout(30_000);
  await stopKubeEnv();
});
