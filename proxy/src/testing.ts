/**
 * @llmtor/proxy/testing: what other packages' tests run the proxy with (a whole
 * local stack, the canned stand-in upstream). Not used by the proxy itself.
 */
export { startLocalStack, type LocalStack } from './localStack.js';
export { LocalStandInUpstream, STAND_IN_TEXT, startLocalStandInUpstream, type StandInFailure, type StandInOptions, type ReceivedRequest } from './upstream/localStandInUpstream.js';
