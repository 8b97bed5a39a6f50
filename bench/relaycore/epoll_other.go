//go:build !linux

package main

import "errors"

func sockaddr(string) (struct{}, error) { return struct{}{}, nil }

type loop struct{ raw bool }

func newLoop(string, struct{}) (*loop, error) { return nil, errors.New("the epoll core needs Linux") }
func (*loop) run() error                      { return nil }

type txpool struct{}

func newTxpool(string, string, int) (*txpool, error) {
	return nil, errors.New("the txpool core needs Linux")
}
func (*txpool) run() error { return nil }
