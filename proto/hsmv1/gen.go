// Package hsmv1 holds the generated code of the Coffer node protocol
// (hsm.proto): the HSM service clients call and the Peer service nodes call
// on each other.
package hsmv1

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative hsm.proto
