/** Tests use the same local stand-in upstream as the demo (canned text, real SSE, recording, failure modes). */
export { LocalStandInUpstream, startLocalStandInUpstream, STAND_IN_TEXT, type StandInFailure, type StandInOptions, type ReceivedRequest } from '../../src/upstream/localStandInUpstream.js';
