//! Real-kernel integration tests for pktloss; helpers shared by the tests.
