package dovetest

import "testing"

func TestAppendCount(t *testing.T) {
	s := New(t)
	c, err := Dial(s.Addr, User, "x")
	if err != nil {
		t.Fatalf("Dial: %v\n%s", err, s.Log())
	}
	defer c.Close()
	msg := []byte("From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n")
	if err := Append(c, "INBOX", [][]byte{msg, msg, msg}); err != nil {
		t.Fatalf("Append: %v\n%s", err, s.Log())
	}
	n, err := Count(c, "INBOX", "nowhere")
	if err != nil || n["INBOX"] != 3 || n["nowhere"] != 0 {
		t.Errorf("Count = %v, %v; want INBOX 3, nowhere 0", n, err)
	}
	bodies, err := Bodies(c, "INBOX")
	if err != nil || len(bodies) != 3 || string(bodies[0]) != string(msg) {
		t.Errorf("Bodies = %d messages, %v", len(bodies), err)
	}
}
