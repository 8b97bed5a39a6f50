//go:build !linux

package main

import "errors"

func sockaddr(string) (struct{}, error) { return struct{}{}, nil }

type loop struct{}

func newLoop(string, struct{}) (*loop, error) { return nil, errors.New("the epoll core needs Linux") }
func (*loop) run() error                      { return nil }
